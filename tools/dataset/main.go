// Command dataset checks, converts and synthesises detection datasets.
//
//	dataset check PATH [--format voc|coco] [--split S] [--classes A,B] [--images header|decode|none] [--json]
//	dataset convert --from voc|coco --to voc|coco IN OUT [--split S] [--images link|copy|symlink|none]
//	dataset synth --out DIR --format voc|coco --images N --size S --seed K
//	dataset anchors PATH [--size N] ...
//	dataset init DIR --preset NAME|FILE [--out DIR] [--size N] [--iters N] [--batch N] [--force]
//
// init writes NAME_teacher.yml and NAME_student.yml for a user's own folder
// (see init.go): the first step of the README's "Your own data".
//
// check reads a VOC folder (root with Annotations/, JPEGImages/,
// ImageSets/Main/) or COCO instances JSON (a file, or a folder holding
// annotations.json and images/) with the same readers training uses, and
// writes to stdout one line per problem ("file:line: severity: message
// (kind)") and a summary line, or one JSON object with --json. It exits 0 when
// the data is clean or has only warnings (boxes clipped or dropped, tiny or
// duplicate boxes), 1 when it has errors (unreadable, corrupt or oversized
// images, syntax errors, size mismatches, unknown classes, duplicate ids, file
// names escaping the image folder), 2 on usage errors.
//
// convert writes OUT (which must not exist, or be an empty folder) through a
// temporary sibling folder renamed into place at the end, so OUT is either
// complete or absent; every file inside is itself written atomically. Image
// files are hard-linked by default (no copy; falls back to a copy across file
// systems), or copied, symbolically linked, or left out (--images). A VOC
// output gets ImageSets/Main/<--out-split>.txt listing every image; a COCO
// output is OUT/annotations.json with the images under OUT/images/. An input
// with errors is not converted unless --skip-bad leaves the bad images out;
// even then an input file that cannot be read (a COCO JSON file that is
// missing, unreadable, over --max-annotation-mb or not JSON; a missing split
// list), or an input with no usable image, is an error and nothing is written.
//
// check, convert and anchors refuse annotation files over --max-annotation-mb
// (default 1024) before reading them, and leave out images with more than
// --max-objects (default 10000) objects; the configuration's
// data.max_annotation_mb and data.max_objects do the same for the other
// tools.
//
// Subcommands implement Run(*env) error (kong binds *env): a nil error is
// exit 0, an exitCode error exits with its code silently, a cli.UsageError exits
// 2, anything else is reported on stderr and exits 1 (130 when interrupted).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"yolodistill/pkg/cli"
	"yolodistill/pkg/dataset"
)

const name = "dataset"

type grammar struct {
	Check   checkCmd   `cmd:"" help:"Report every problem of a VOC or COCO dataset; exit 1 on errors."`
	Convert convertCmd `cmd:"" help:"Convert a dataset between VOC and COCO."`
	Synth   synthCmd   `cmd:"" help:"Write the built-in synthetic dataset (byte-identical for the same arguments)."`
	Anchors anchorsCmd `cmd:"" help:"Fit YOLO anchors to a dataset's boxes (k-means on 1-IoU); print them as a config snippet."`
	Init    initCmd    `cmd:"" help:"Write a teacher and a student configuration for your own VOC or COCO folder (classes, splits, fitted anchors), inheriting a preset."`
}

// env is what every subcommand's Run receives.
type env struct {
	ctx    context.Context
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	log    cli.Logger
}

// exitCode ends the tool with a code and no further message.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit %d", int(e)) }

func main() {
	os.Exit(cli.Main(run))
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var g grammar
	kctx, code, done := cli.Parse(name, cli.Describe("Check, convert and synthesise detection datasets (Pascal VOC, COCO).",
		"dataset check path/to/VOCdevkit/VOC2007",
		"dataset init path/to/mydata --preset bccd_student --out configs",
		"dataset anchors path/to/BCCD --size 320",
		"dataset synth --out out/synth --format voc --images 600 --size 128 --classes circle,square"), &g, args, stderr)
	if done {
		return code
	}
	e := &env{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr, log: cli.Logger{Name: name, W: stderr}}
	err := kctx.Run(e)
	if err == nil {
		return cli.ExitOK
	}
	var ec exitCode
	if errors.As(err, &ec) {
		return int(ec)
	}
	return e.log.Fail(err)
}

type checkCmd struct {
	Path      string `arg:"" placeholder:"PATH" help:"VOC folder, COCO JSON file, or COCO folder (annotations.json + images/)."`
	Format    string `enum:"voc,coco," default:"" help:"voc or coco (default: guessed from PATH)."`
	Split     string `placeholder:"S" help:"VOC split(s) from ImageSets/Main, comma-separated (default: every annotation)."`
	Classes   string `placeholder:"A,B,..." help:"class list, in label order (default: discovered; VOC sorted by name, COCO by category id)."`
	ImageRoot string `placeholder:"DIR" help:"COCO image folder (default: PATH/images for a folder, the JSON's folder for a file)."`
	Images    string `enum:"header,decode,none" default:"decode" help:"how far to check images: header (size, format, pixel limit), decode (also truncated/corrupt data), none."`
	MaxPixels int    `default:"67108864" placeholder:"N" help:"reject images with more pixels than this, before decoding."`
	JSON      bool   `name:"json" help:"write one JSON object instead of lines."`
	limitFlags
}

func (c *checkCmd) Run(e *env) error {
	mode, err := dataset.ParseImageCheck(c.Images)
	if err != nil {
		return cli.UsageError{Err: err}
	}
	lim, err := c.limits()
	if err != nil {
		return err
	}
	src := source{format: c.Format, path: c.Path, split: c.Split, classes: splitClasses(c.Classes), imageRoot: c.ImageRoot, images: mode, maxPixels: c.MaxPixels, limits: lim}
	if src.format, err = src.formatName(); err != nil {
		return err
	}
	ds, ps, err := src.read()
	if err != nil {
		return err
	}
	if e.ctx.Err() != nil {
		return e.ctx.Err()
	}
	r := dataset.NewCheckReport(c.Path, src.format, ds, ps)
	if c.JSON {
		err = r.WriteJSON(e.stdout)
	} else {
		err = r.WriteText(e.stdout)
	}
	if err != nil {
		return err
	}
	if r.Errors > 0 {
		return exitCode(cli.ExitFailure)
	}
	return nil
}

type convertCmd struct {
	From      string `required:"" enum:"voc,coco" help:"input format: voc or coco."`
	To        string `required:"" enum:"voc,coco" help:"output format: voc or coco."`
	In        string `arg:"" placeholder:"IN" help:"input dataset (VOC folder; COCO JSON file or folder)."`
	Out       string `arg:"" placeholder:"OUT" help:"output folder; must not exist or be empty."`
	Split     string `placeholder:"S" help:"VOC input split(s), comma-separated (default: every annotation)."`
	OutSplit  string `default:"trainval" placeholder:"S" help:"VOC output split list name (ImageSets/Main/S.txt)."`
	Classes   string `placeholder:"A,B,..." help:"class list, in label order (default: discovered)."`
	ImageRoot string `placeholder:"DIR" help:"COCO input image folder (see check)."`
	Images    string `enum:"link,copy,symlink,none" default:"link" help:"how images get into OUT: link (hard link, copy across file systems), copy, symlink, none."`
	Check     string `enum:"header,decode,none" default:"header" help:"how far input images are checked before converting."`
	SkipBad   bool   `help:"leave out images with errors instead of refusing to convert."`
	MaxPixels int    `default:"67108864" placeholder:"N" help:"image pixel limit."`
	limitFlags
}

func (c *convertCmd) Run(e *env) error {
	mode, _ := dataset.ParseImageCheck(c.Check)
	imgMode, _ := dataset.ParseImageMode(c.Images)
	if c.Images != "none" && mode == dataset.ImageNone {
		// Linking needs the files; a missing one is reported by the writer.
		e.log.Printf("warning: --check none: input images are not checked before they are written (--images %s)", c.Images)
	}
	lim, err := c.limits()
	if err != nil {
		return err
	}
	if err := dataset.CheckOutDir(c.Out); err != nil {
		return err
	}
	ds, ps, err := source{format: c.From, path: c.In, split: c.Split, classes: splitClasses(c.Classes), imageRoot: c.ImageRoot, images: mode, maxPixels: c.MaxPixels, limits: lim}.read()
	if err != nil {
		return err
	}
	ps.Sort()
	for _, p := range ps {
		e.log.Printf("%s", p)
	}
	if n := ps.Count(dataset.Error); n > 0 {
		if !c.SkipBad {
			e.log.Printf("%d errors in %s; nothing written (--skip-bad leaves the bad images out)", n, c.In)
			return exitCode(cli.ExitFailure)
		}
		// --skip-bad leaves out images, never whole input files: an input
		// that could not be read is not an empty dataset.
		if whole := wholeFileErrors(ps, c.From, c.In); len(whole) > 0 {
			e.log.Printf("%s could not be read (%s); nothing written: --skip-bad leaves out bad images, not unreadable input files", whole[0].File, whole[0].Message)
			return exitCode(cli.ExitFailure)
		}
		if len(ds.Samples) == 0 {
			e.log.Printf("%d errors in %s and no usable image; nothing written", n, c.In)
			return exitCode(cli.ExitFailure)
		}
		e.log.Printf("%d errors in %s; their images are left out (--skip-bad)", n, c.In)
	}
	err = dataset.WriteDir(c.Out, func(tmp string) error {
		if err := dataset.Write(tmp, c.To, ds, dataset.WriteOptions{Split: c.OutSplit, Images: imgMode}); err != nil {
			return err
		}
		return e.ctx.Err()
	})
	if err != nil {
		return err
	}
	e.log.Printf("wrote %s (%s): %d images, %d boxes, %d classes", c.Out, c.To, len(ds.Samples), ds.NumObjects(), len(ds.Classes))
	return nil
}

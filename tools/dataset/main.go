// Command dataset checks, converts and synthesises detection datasets.
//
//	dataset check PATH [--format voc|coco] [--split S] [--classes A,B] [--images header|decode|none] [--json]
//	dataset convert --from voc|coco --to voc|coco IN OUT [--split S] [--images link|copy|symlink|none]
//	dataset synth --out DIR --format voc|coco --images N --size S --seed K
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
// with errors is not converted unless --skip-bad leaves the bad images out.
//
// Subcommands implement Run(*env) error (kong binds *env): a nil error is
// exit 0, an exitCode error exits with its code silently, a cli.UsageError exits
// 2, anything else is reported on stderr and exits 1 (130 when interrupted).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"yolodistill/pkg/cli"
	"yolodistill/pkg/dataset"
)

const name = "dataset"

type grammar struct {
	Check   checkCmd   `cmd:"" help:"Report every problem of a VOC or COCO dataset; exit 1 on errors."`
	Convert convertCmd `cmd:"" help:"Convert a dataset between VOC and COCO."`
	Synth   synthCmd   `cmd:"" help:"Write the built-in synthetic dataset (byte-identical for the same arguments)."`
	Anchors anchorsCmd `cmd:"" help:"Fit YOLO anchors to a dataset's boxes (k-means on 1-IoU); print them as a config snippet."`
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
	ctx, stop := cli.SignalContext()
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var g grammar
	kctx, code, done := cli.Parse(name, "Check, convert and synthesise detection datasets (Pascal VOC, COCO).", &g, args, stderr)
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

// source names a dataset on the command line and how to read it.
type source struct {
	format    string
	path      string
	split     string
	classes   []string
	imageRoot string
	images    dataset.ImageCheck
	maxPixels int
}

func (s source) read() (*dataset.Dataset, dataset.Problems, error) {
	format := s.format
	if format == "" {
		f, err := dataset.DetectFormat(s.path)
		if err != nil {
			return nil, nil, err
		}
		format = f
	}
	if _, err := os.Stat(s.path); err != nil {
		return nil, nil, err
	}
	switch format {
	case "voc":
		if s.imageRoot != "" {
			return nil, nil, cli.UsageError{Err: errors.New("--image-root applies to COCO only (VOC images are in JPEGImages/)")}
		}
		ds, ps := dataset.ReadVOC(s.path, dataset.VOCOptions{Classes: s.classes, Split: s.split, Images: s.images, MaxPixels: s.maxPixels})
		return ds, ps, nil
	case "coco":
		if s.split != "" {
			return nil, nil, cli.UsageError{Err: errors.New("--split applies to VOC only (a COCO file is one split)")}
		}
		ds, ps := dataset.ReadCOCO(s.path, dataset.COCOOptions{ImageRoot: s.imageRoot, Classes: s.classes, Images: s.images, MaxPixels: s.maxPixels})
		return ds, ps, nil
	}
	return nil, nil, cli.UsageError{Err: fmt.Errorf("format %q: want voc or coco", format)}
}

func splitClasses(s string) []string {
	if s == "" {
		return nil
	}
	var out []string
	for _, c := range strings.Split(s, ",") {
		out = append(out, strings.TrimSpace(c))
	}
	return out
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
}

// checkReport is check's --json output.
type checkReport struct {
	Path     string           `json:"path"`
	Format   string           `json:"format"`
	Images   int              `json:"images"`
	Boxes    int              `json:"boxes"`
	Classes  []string         `json:"classes"`
	PerClass map[string]int   `json:"boxes_per_class"`
	Errors   int              `json:"errors"`
	Warnings int              `json:"warnings"`
	ByKind   map[string]int   `json:"problems_by_kind"`
	Problems dataset.Problems `json:"problems"`
}

// maxClassesShown bounds the per-class counts in check's summary line.
const maxClassesShown = 20

func (c *checkCmd) Run(e *env) error {
	mode, err := dataset.ParseImageCheck(c.Images)
	if err != nil {
		return cli.UsageError{Err: err}
	}
	format := c.Format
	if format == "" {
		if format, err = dataset.DetectFormat(c.Path); err != nil {
			return err
		}
	}
	ds, ps, err := source{format: format, path: c.Path, split: c.Split, classes: splitClasses(c.Classes), imageRoot: c.ImageRoot, images: mode, maxPixels: c.MaxPixels}.read()
	if err != nil {
		return err
	}
	if e.ctx.Err() != nil {
		return e.ctx.Err()
	}
	ps.Sort()
	r := checkReport{Path: c.Path, Format: format, Images: len(ds.Samples), Classes: ds.Classes, PerClass: map[string]int{},
		Errors: ps.Count(dataset.Error), Warnings: ps.Count(dataset.Warning), ByKind: map[string]int{}, Problems: ps}
	if r.Classes == nil {
		r.Classes = []string{}
	}
	if r.Problems == nil {
		r.Problems = dataset.Problems{}
	}
	for _, s := range ds.Samples {
		r.Boxes += len(s.Objects)
		for _, o := range s.Objects {
			r.PerClass[ds.Classes[o.Label]]++
		}
	}
	for _, p := range ps {
		r.ByKind[p.Kind]++
	}
	if c.JSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", " ")
		if err := enc.Encode(&r); err != nil {
			return err
		}
	} else {
		if err := ps.Write(e.stdout); err != nil {
			return err
		}
		var per []string
		for _, cl := range ds.Classes {
			per = append(per, fmt.Sprintf("%s %d", cl, r.PerClass[cl]))
		}
		if len(per) > maxClassesShown {
			per = append(per[:maxClassesShown], "... (--json lists all)")
		}
		var kinds []string
		for k, n := range r.ByKind {
			kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
		}
		sort.Strings(kinds)
		byKind := ""
		if len(kinds) > 0 {
			byKind = " (" + strings.Join(kinds, ", ") + ")"
		}
		if _, err := fmt.Fprintf(e.stdout, "%s: %s, %d images usable, %d boxes, %d classes [%s]; %d errors, %d warnings%s\n",
			c.Path, format, r.Images, r.Boxes, len(ds.Classes), strings.Join(per, ", "), r.Errors, r.Warnings, byKind); err != nil {
			return err
		}
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
}

func (c *convertCmd) Run(e *env) error {
	mode, _ := dataset.ParseImageCheck(c.Check)
	imgMode, _ := dataset.ParseImageMode(c.Images)
	if c.Images != "none" && mode == dataset.ImageNone {
		// Linking needs the files; a missing one is reported by the writer.
		e.log.Printf("warning: --check none: input images are not checked before they are written (--images %s)", c.Images)
	}
	ds, ps, err := source{format: c.From, path: c.In, split: c.Split, classes: splitClasses(c.Classes), imageRoot: c.ImageRoot, images: mode, maxPixels: c.MaxPixels}.read()
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
		e.log.Printf("%d errors in %s; their images are left out (--skip-bad)", n, c.In)
	}
	if err := checkOut(c.Out); err != nil {
		return err
	}
	parent := filepath.Dir(filepath.Clean(c.Out))
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(filepath.Clean(c.Out))+".tmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp) // a no-op after the rename
	switch c.To {
	case "voc":
		err = dataset.WriteVOC(tmp, ds, dataset.VOCWriteOptions{Split: c.OutSplit, Images: imgMode})
	default:
		err = dataset.WriteCOCO(tmp, ds, dataset.COCOWriteOptions{Images: imgMode})
	}
	if err != nil {
		return err
	}
	if err := e.ctx.Err(); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	// An empty OUT is replaced; checkOut made sure it is empty.
	if st, err := os.Stat(c.Out); err == nil && st.IsDir() {
		if err := os.Remove(c.Out); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp, c.Out); err != nil {
		return err
	}
	boxes := 0
	for _, s := range ds.Samples {
		boxes += len(s.Objects)
	}
	e.log.Printf("wrote %s (%s): %d images, %d boxes, %d classes", c.Out, c.To, len(ds.Samples), boxes, len(ds.Classes))
	return nil
}

// checkOut refuses an OUT that exists and is not an empty folder.
func checkOut(out string) error {
	st, err := os.Stat(out)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("%s exists and is not a folder; refusing to overwrite", out)
	}
	ents, err := os.ReadDir(out)
	if err != nil {
		return err
	}
	if len(ents) > 0 {
		return fmt.Errorf("%s exists and is not empty; refusing to overwrite", out)
	}
	return nil
}

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"yolodistill/pkg/anchor"
	"yolodistill/pkg/cli"
	"yolodistill/pkg/dataset"
)

// anchorsCmd is `dataset anchors`: YOLO anchors fitted to a dataset's boxes
// by k-means on 1 - IoU (anchor.Fit), printed as a config snippet.
//
//	dataset anchors PATH [--format voc|coco] [--split S] [--classes A,B] [-k 9] [--size 320]
//	                     [--init quantile|kmeans++] [--seed 1] [--decimals 0] [--json]
//
// Boxes are taken at the network input size: every image stretched to
// --size x --size, as training resizes. stdout is a YAML snippet to paste into
// a config (comments give the mean best IoU of the dataset's boxes with the
// printed, rounded anchors, and that of PaddleDetection's default COCO
// anchors, both as they are and scaled from 608 px to --size), or one JSON
// object with --json. Deterministic for the same data and flags.
type anchorsCmd struct {
	Path      string `arg:"" placeholder:"PATH" help:"VOC folder, COCO JSON file, or COCO folder (annotations.json + images/)."`
	Format    string `enum:"voc,coco," default:"" help:"voc or coco (default: guessed from PATH)."`
	Split     string `placeholder:"S" help:"VOC split(s), comma-separated (default: trainval when ImageSets/Main/trainval.txt exists, else every annotation)."`
	Classes   string `placeholder:"A,B,..." help:"class list, in label order (default: discovered)."`
	ImageRoot string `placeholder:"DIR" help:"COCO image folder (see check)."`
	K         int    `short:"k" default:"9" help:"number of anchors."`
	Size      int    `default:"320" help:"network input size in pixels; boxes are scaled as images stretched to SIZE x SIZE."`
	Sizes     string `placeholder:"S1,S2,..." help:"multi-scale training: fit to the boxes at every one of these input sizes together (e.g. data.augment.multi_scale's list), so the anchors serve the whole range; replaces --size."`
	Init      string `enum:"quantile,kmeans++" default:"quantile" help:"k-means start: quantile (boxes at area quantiles, no randomness) or kmeans++ (uses --seed)."`
	Seed      uint64 `default:"1" help:"random seed for --init kmeans++."`
	Decimals  int    `default:"0" help:"decimals the anchors are rounded to (0: whole pixels, as YOLO configs use)."`
	Images    string `enum:"header,none" default:"header" help:"image check: header (read each image's size from its file) or none (trust the annotation's size)."`
	JSON      bool   `name:"json" help:"write one JSON object instead of the YAML snippet."`
	limitFlags
}

// anchorsReport is anchors' --json output. Anchors are [w, h] pixels at
// InputSize, sorted by area, rounded to --decimals; MeanIoU is the mean best
// IoU of the boxes with them, UnroundedAnchorsMeanIoU with the anchors before
// rounding. DefaultAnchors are PaddleDetection's COCO anchors as they are
// (pixels for a 608 px input); DefaultScaledAnchors the same scaled to
// InputSize (rounded to 0.1 px).
type anchorsReport struct {
	Path                    string          `json:"path"`
	Format                  string          `json:"format"`
	Split                   string          `json:"split"`
	InputSize               int             `json:"input_size"`
	InputSizes              []int           `json:"input_sizes,omitempty"` // --sizes: the boxes at each, pooled
	K                       int             `json:"k"`
	Init                    string          `json:"init"`
	Seed                    uint64          `json:"seed"`
	Images                  int             `json:"images"`
	Boxes                   int             `json:"boxes"`
	Anchors                 []anchor.Anchor `json:"anchors"`
	MeanIoU                 float64         `json:"mean_iou"`
	UnroundedAnchorsMeanIoU float64         `json:"mean_iou_unrounded"`
	Iterations              int             `json:"iterations"`
	Converged               bool            `json:"converged"`
	DefaultAnchors          []anchor.Anchor `json:"default_anchors"`
	DefaultMeanIoU          float64         `json:"default_anchors_mean_iou"`
	DefaultScaledAnchors    []anchor.Anchor `json:"default_anchors_scaled"`
	DefaultScaledMeanIoU    float64         `json:"default_anchors_scaled_mean_iou"`
	DefaultScaledFromSize   int             `json:"default_anchors_size"`
}

// maxErrorsShown bounds the dataset errors anchors repeats on stderr.
const maxErrorsShown = 5

func (c *anchorsCmd) Run(e *env) error {
	if c.K < 1 {
		return cli.UsageError{Err: fmt.Errorf("-k %d: want at least 1", c.K)}
	}
	if c.Size < 1 {
		return cli.UsageError{Err: fmt.Errorf("--size %d: want at least 1", c.Size)}
	}
	inputs := []int{c.Size}
	if c.Sizes != "" {
		inputs = nil
		for _, f := range strings.Split(c.Sizes, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				return cli.UsageError{Err: fmt.Errorf("--sizes %q: want input sizes in pixels, comma-separated (e.g. 320,416,608)", c.Sizes)}
			}
			inputs = append(inputs, n)
		}
	}
	if c.Decimals < 0 || c.Decimals > 6 {
		return cli.UsageError{Err: fmt.Errorf("--decimals %d: want 0 to 6", c.Decimals)}
	}
	start, err := anchor.ParseInit(c.Init)
	if err != nil {
		return cli.UsageError{Err: err}
	}
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
	if _, err := os.Stat(c.Path); err != nil {
		return err
	}
	split := c.Split
	if format == "voc" && split == "" {
		if _, err := os.Stat(filepath.Join(c.Path, dataset.VOCSets, "trainval.txt")); err == nil {
			split = "trainval"
		} else {
			e.log.Printf("%s has no %s/trainval.txt; fitting to every annotation (--split chooses)", c.Path, dataset.VOCSets)
		}
	}
	lim, err := c.limits()
	if err != nil {
		return err
	}
	ds, ps, err := source{format: format, path: c.Path, split: split, classes: splitClasses(c.Classes), imageRoot: c.ImageRoot, images: mode, maxPixels: dataset.DefaultMaxPixels, limits: lim}.read()
	if err != nil {
		return err
	}
	if err := e.ctx.Err(); err != nil {
		return err
	}
	if n := ps.Count(dataset.Error); n > 0 {
		ps.Sort()
		shown := 0
		for _, p := range ps {
			if p.Severity == dataset.Error && shown < maxErrorsShown {
				e.log.Printf("%s", p)
				shown++
			}
		}
		e.log.Printf("warning: %s has %d errors (their images are left out) and %d warnings; `dataset check` lists them all", c.Path, n, ps.Count(dataset.Warning))
	}
	// With --sizes every box counts once per input size: the anchors are
	// fixed pixels of the network input, the same at every training size,
	// so they must cover each box as it appears at each size.
	var sizes []anchor.Anchor
	for _, in := range inputs {
		sizes = append(sizes, dataset.BoxSizes(ds, in)...)
	}
	if len(sizes) == 0 {
		return fmt.Errorf("%s: no usable boxes (%d images read)", c.Path, len(ds.Samples))
	}
	fit, err := anchor.Fit(sizes, anchor.FitOptions{K: c.K, Init: start, Seed: c.Seed})
	if err != nil {
		return fmt.Errorf("%s: %w", c.Path, err)
	}
	if !fit.Converged {
		e.log.Printf("warning: k-means still moving after %d rounds; anchors may not be final", fit.Iterations)
	}
	anchors := anchor.Round(fit.Anchors, c.Decimals)
	def := anchor.Defaults()
	// The COCO anchors scaled to the (mean) input size, for comparison.
	mean := 0
	for _, in := range inputs {
		mean += in
	}
	mean = (mean + len(inputs)/2) / len(inputs)
	scaled := anchor.Round(anchor.Scale(def, float64(mean)/anchor.DefaultSize), 1)
	r := anchorsReport{
		Path: c.Path, Format: format, Split: split, InputSize: mean, K: c.K, Init: start.String(), Seed: c.Seed,
		Images: len(ds.Samples), Boxes: len(sizes),
		Anchors: anchors, MeanIoU: anchor.MeanBestIoU(sizes, anchors),
		Iterations: fit.Iterations, Converged: fit.Converged,
		DefaultAnchors: def, DefaultMeanIoU: anchor.MeanBestIoU(sizes, def),
		DefaultScaledAnchors: scaled, DefaultScaledMeanIoU: anchor.MeanBestIoU(sizes, scaled),
		DefaultScaledFromSize: anchor.DefaultSize, UnroundedAnchorsMeanIoU: fit.MeanIoU,
	}
	if c.Sizes != "" {
		r.InputSizes = inputs
	}
	if c.JSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", " ")
		return enc.Encode(&r)
	}
	return writeAnchorsYAML(e, &r)
}

// flowPairs formats anchors as a YAML flow sequence: [[10, 13], [16, 30]].
func flowPairs(a []anchor.Anchor) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, p := range a {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "[%s, %s]", strconv.FormatFloat(p.W(), 'f', -1, 64), strconv.FormatFloat(p.H(), 'f', -1, 64))
	}
	b.WriteByte(']')
	return b.String()
}

// oneLine keeps a user-given string from breaking a YAML comment line.
func oneLine(s string) string {
	return strings.NewReplacer("\n", `\n`, "\r", `\r`).Replace(s)
}

func writeAnchorsYAML(e *env, r *anchorsReport) error {
	start := r.Init
	if r.Init == anchor.InitKMeansPP.String() {
		start += fmt.Sprintf(" seed %d", r.Seed)
	}
	split := ""
	if r.Split != "" {
		split = ", split " + r.Split
	}
	at := fmt.Sprintf("%dx%d", r.InputSize, r.InputSize)
	if len(r.InputSizes) > 0 {
		at = "input sizes " + strings.Trim(strings.Join(strings.Fields(fmt.Sprint(r.InputSizes)), ","), "[]")
	}
	_, err := fmt.Fprintf(e.stdout, `# dataset anchors %s (%s%s): %d anchors by k-means on 1-IoU (init %s), %d boxes of %d images at %s
# mean best IoU %.4f; PaddleDetection's COCO anchors: %.4f as they are, %.4f scaled from %d px
model:
  anchors: %s
`, oneLine(r.Path), r.Format, oneLine(split), r.K, start, r.Boxes, r.Images, at,
		r.MeanIoU, r.DefaultMeanIoU, r.DefaultScaledMeanIoU, r.DefaultScaledFromSize, flowPairs(r.Anchors))
	return err
}

// Command detect-infer runs a trained detector on images and draws what it
// finds.
//
//	detect-infer [-c CONFIG] --weights CKPT (--infer-img FILE | --infer-dir DIR)
//	             --output-dir DIR [--draw-threshold X] [--size N] [--json FILE]
//
// Without -c the configuration stored in the checkpoint is used (the one its
// training run used; detector.LoadConfig), -o applied to it; weights that
// carry none (a URL, another framework's file) need -c (exit 2).
//
// Images are JPEG or PNG of any size (up to data.max_image_side squared
// pixels). Each is stretched to N x N pixels (--size, default eval.size) with
// cubic interpolation and normalised with data.augment.mean/std, as
// PaddleDetection's YOLOv3 eval reader does; the detections (eval.nms) are
// mapped back to the image's own pixels. Boxes scoring at least the draw
// threshold (default eval.draw_threshold) are drawn with "class score" tags and
// the picture is written to DIR under the input's base name, in the input's
// format. --infer-dir takes the folder's *.jpg, *.jpeg and *.png files (not sub
// folders), in name order; symbolic links to files are followed (a broken
// link is reported like an unreadable image).
//
// DIR/detections.json (or --json FILE; "-" for stdout) gets the drawn
// detections as a JSON array of COCO result records with two extra fields:
// {"image_id": position of the image in the run (0-based), "file": the input
// path, "category_id": label + 1, "category": class name, "bbox": [x, y, w, h]
// in the image's pixels, "score"}. The array is sorted by image, then
// descending score. detect-eval --dets reads it (extra fields are ignored).
// Every file is written atomically; DIR must not be the folder of an input
// image (inputs are never overwritten). DIR and --json FILE are checked before
// any work (a folder this process can write in; not a folder where a file is
// meant), and so is the input size: --size (or eval.size) whose graph would
// need more memory than the machine has available is refused with the
// largest size that fits (a usage error for --size). A --weights URL is
// downloaded with --connect-timeout and --idle-timeout.
//
// At the end a line on stderr gives the network's own speed: the wall time
// of its forward passes only (batch 1), per image and as images/s.
//
// An image that cannot be read or decoded is reported on stderr (naming the
// file) and skipped; the others are still processed and written, and the exit
// code is then 1. Other exit codes: 0 ok, 1 configuration, checkpoint or
// output failure, 2 usage, 130 interrupted.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"yolodistill/pkg/atomicfile"
	"yolodistill/pkg/augment"
	"yolodistill/pkg/checkpoint"
	"yolodistill/pkg/cli"
	"yolodistill/pkg/dataset"
	"yolodistill/pkg/detector"
	"yolodistill/pkg/draw"
	"yolodistill/pkg/nn"
	"yolodistill/pkg/yolo"
)

const name = "detect-infer"

type grammar struct {
	Config        string   `short:"c" placeholder:"FILE" help:"model configuration (YAML) (default: the one stored in the --weights checkpoint)."`
	Override      []string `short:"o" sep:"none" placeholder:"KEY=VALUE" help:"override a configuration key (repeatable)."`
	Weights       string   `required:"" placeholder:"CKPT" help:"the model's weights, path or http(s) URL: our checkpoint, a PaddleDetection tar or folder, .pdparams, PyTorch .pth/.pt state_dict or .safetensors (recognised by content)."`
	InferImg      string   `name:"infer-img" xor:"input" required:"" placeholder:"FILE" help:"one image (JPEG or PNG)."`
	InferDir      string   `name:"infer-dir" xor:"input" required:"" placeholder:"DIR" help:"every *.jpg, *.jpeg and *.png image of a folder."`
	OutputDir     string   `name:"output-dir" default:"output" placeholder:"DIR" help:"folder for the drawn images and detections.json (created)."`
	DrawThreshold float64  `name:"draw-threshold" default:"-1" placeholder:"X" help:"draw boxes scoring at least X, in [0, 1] (default: eval.draw_threshold)."`
	Size          int      `placeholder:"N" help:"square input size in pixels, a multiple of 32 (default: eval.size)."`
	JSON          string   `name:"json" placeholder:"FILE" help:"write the detections JSON here instead of DIR/detections.json ('-': stdout)."`
	cli.NetFlags
}

func main() {
	nn.TuneGC()
	os.Exit(cli.Main(run))
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var g grammar
	log := cli.Logger{Name: name, W: stderr}
	if _, code, done := cli.ParseVersion(name, cli.Describe("Detect objects in images and draw them (boxes, class names, scores).",
		"detect-infer --weights out/demo/distilled/model_final.ckpt --infer-dir path/to/images --output-dir out/infer"), nn.BuildInfo(), &g, args, stderr); done {
		return code
	}
	if g.Size != 0 {
		if err := yolo.CheckInputSize(g.Size, g.Size); err != nil {
			log.Printf("error: --size: %v", err)
			return cli.ExitUsage
		}
	}
	if g.DrawThreshold != -1 && !(g.DrawThreshold >= 0 && g.DrawThreshold <= 1) {
		log.Printf("error: --draw-threshold %v: want a score in [0, 1]", g.DrawThreshold)
		return cli.ExitUsage
	}
	if err := g.NetFlags.Check(); err != nil {
		return log.Fail(err)
	}
	ctx = checkpoint.WithFetch(ctx, checkpoint.FetchOptions{ConnectTimeout: g.ConnectTimeout, IdleTimeout: g.IdleTimeout, Logf: log.Printf})
	cfg, err := detector.LoadConfig(g.Config, g.Weights, g.Override)
	if err != nil {
		return log.Fail(err)
	}
	size := g.Size
	if size == 0 {
		size = cfg.Eval.Size
	}
	// The input size must fit this machine's memory (one image at a time):
	// checked before anything is loaded. The flag is a usage error; eval.size
	// blames its source (an -o override is one too).
	if g.Size != 0 {
		if err := detector.CheckSize(cfg, 1, g.Size, false); err != nil {
			return log.Fail(cli.Usagef("--size %d: %w", g.Size, err))
		}
	} else if err := detector.CheckSizes(nil, cfg, "eval.size", []int{size}, 1, false); err != nil {
		return log.Fail(err)
	}
	thresh := g.DrawThreshold
	if thresh == -1 {
		thresh = cfg.Eval.DrawThreshold
	}
	inputs, err := listInputs(g.InferImg, g.InferDir)
	if err != nil {
		return log.Fail(err)
	}
	if err := checkOutputDir(g.OutputDir, inputs); err != nil {
		return log.Fail(err)
	}
	if err := atomicfile.CheckDir(g.OutputDir); err != nil {
		return log.Fail(fmt.Errorf("--output-dir: %w", err))
	}
	if g.JSON != "" && g.JSON != "-" {
		if err := atomicfile.Check(g.JSON); err != nil {
			return log.Fail(fmt.Errorf("--json: %w", err))
		}
	}
	det, warn, err := detector.Load(ctx, cfg, g.Weights, "")
	if err != nil {
		return log.Fail(err)
	}
	if warn != "" {
		log.Printf("warning: %s", warn)
	}
	if err := os.MkdirAll(g.OutputDir, 0o755); err != nil {
		return log.Fail(err)
	}
	recs := []detector.InferRecord{}
	failed := 0
	for i, in := range inputs {
		if err := ctx.Err(); err != nil {
			return log.Fail(err)
		}
		dets, err := det.InferFile(in, size, thresh, g.OutputDir)
		if err != nil {
			var ie *dataset.ImageError
			if !errors.As(err, &ie) {
				return log.Fail(err) // output or model failure: stop
			}
			log.Printf("warning: skipping an image that cannot be read: %v", err)
			failed++
			continue
		}
		recs = append(recs, detector.InferRecords(int64(i), in, dets, cfg.Data.Classes)...)
		log.Printf("%s: %d detections at score >= %.2f -> %s", in, len(dets), thresh, filepath.Join(g.OutputDir, filepath.Base(in)))
	}
	data, err := detector.MarshalInferRecords(recs)
	if err != nil {
		return log.Fail(err)
	}
	switch g.JSON {
	case "-":
		_, err = stdout.Write(data)
	case "":
		err = atomicfile.WriteBytes(filepath.Join(g.OutputDir, "detections.json"), data)
	default:
		err = atomicfile.WriteBytes(g.JSON, data)
	}
	if err != nil {
		return log.Fail(err)
	}
	if det.NetImages > 0 {
		sec := det.NetTime.Seconds()
		log.Printf("network forward: %d images at %dx%d, batch 1, %.1f ms per image (%.1f images/s; decoding, image loading and drawing not counted)",
			det.NetImages, size, size, 1000*sec/float64(det.NetImages), float64(det.NetImages)/sec)
	}
	if failed > 0 {
		if allowed := augment.AllowedSkips(cfg.Data.SkipLimit, len(inputs)); failed > allowed {
			log.Printf("error: %d of %d images could not be read, more than the %d that data.skip_limit=%g allows", failed, len(inputs), allowed, cfg.Data.SkipLimit)
			return cli.ExitFailure
		}
		log.Printf("warning: %d of %d images could not be read and were skipped", failed, len(inputs))
	}
	return cli.ExitOK
}

// listInputs returns the images to process: the one file, or the folder's
// image files in name order.
func listInputs(img, dir string) ([]string, error) {
	if img != "" {
		st, err := os.Stat(img)
		if err != nil {
			return nil, fmt.Errorf("--infer-img: %w", err)
		}
		if st.IsDir() {
			return nil, fmt.Errorf("--infer-img %s is a folder (use --infer-dir)", img)
		}
		if !draw.ImageExt(img) {
			return nil, fmt.Errorf("--infer-img %s: extension %q is not .jpg, .jpeg or .png", img, filepath.Ext(img))
		}
		return []string{img}, nil
	}
	out, err := draw.ListImages(dir)
	if err != nil {
		return nil, fmt.Errorf("--infer-dir: %w", err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--infer-dir %s: no .jpg, .jpeg or .png files", dir)
	}
	return out, nil
}

// checkOutputDir refuses an output folder that holds an input image (the
// drawing would replace it).
func checkOutputDir(out string, inputs []string) error {
	ao, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	for _, in := range inputs {
		ai, err := filepath.Abs(filepath.Dir(in))
		if err != nil {
			return err
		}
		if ai == ao {
			return fmt.Errorf("--output-dir %s is the folder of the input %s: the drawings would overwrite the inputs; choose another folder", out, in)
		}
	}
	return nil
}

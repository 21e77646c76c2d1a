// Command model-inspect prints a detector's named layer outputs with their
// shapes, parameter counts and FLOPs at one input size, and, given a teacher
// configuration, the teacher/student pairs of named feature points whose
// shapes match: the step PaddleSlim's distillation example does by hand.
//
//	model-inspect -c student.yml [--size N] [-t teacher.yml] [--all] [--json]
//	model-inspect [-c model.yml] --weights FILE|URL [--json]
//
// With --weights it lists what a weights file holds (any format the tools
// read: our checkpoint, PaddleDetection tar or folder, .pdparams, PyTorch
// state_dict, safetensors) and, given -c, how it maps onto that model: the
// naming it was read with, per model tensor the file's name and whether it
// was found, is missing or mis-shaped, then the file's unexpected and skipped
// (training state, ImageNet classifier) tensors. The exit code is 0 when the
// file can be read and mapped, whatever it covers (the line "# loads:" says
// whether it holds the whole model or a backbone).
//
// stdout is data only: a table, or with --json one JSON object on one line. Shapes are
// per image, channels first (C x H x W). FLOPs are 2 x multiply-adds of the
// convolutions for one image (torch_reference.py's conv_flops counting).
// Exit codes: 0 ok, 1 a configuration or model error, 2 usage (bad flags,
// an input size that is not a positive multiple of 32).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"yolodistill/pkg/cli"
	"yolodistill/pkg/config"
	"yolodistill/pkg/distill"
	"yolodistill/pkg/yolo"
)

const name = "model-inspect"

type grammar struct {
	Config    string   `short:"c" placeholder:"FILE" help:"model configuration (YAML); required unless --weights alone."`
	Override  []string `short:"o" sep:"none" placeholder:"KEY=VALUE" help:"override a configuration key of -c (repeatable)."`
	Size      int      `placeholder:"N" help:"square input size in pixels, a multiple of 32 (default: the configuration's eval.size)."`
	Teacher   string   `short:"t" placeholder:"FILE" help:"teacher configuration: also list the teacher/student pairs whose shapes match."`
	AllLayers bool     `name:"all" help:"with -t, pair every layer output, not only the named feature points (backbone.c3..c5, head.I.route/tip/out)."`
	JSON      bool     `name:"json" help:"write one JSON object instead of a table."`
	Weights   string   `placeholder:"FILE|URL" help:"list the tensors of a weights file and, with -c, how they map onto the model."`
	CacheDir  string   `name:"cache-dir" placeholder:"DIR" help:"where downloaded weights are kept (default: $XDG_CACHE_HOME/yolodistill or ~/.cache/yolodistill)."`
}

func main() {
	os.Exit(cli.Main(run))
}

// model is one loaded configuration, its Spec and the inference at the size.
type model struct {
	path string
	spec *yolo.Spec
	inf  *yolo.Inference
}

// load reads the configuration at path (with overrides) and infers its model
// at size x size (0: the configuration's eval.size). On error it also returns
// the exit code: 2 for an input size that is not a multiple of 32 or a bad
// -o override (malformed, unknown key, refused value), else 1.
func load(path string, overrides []string, size int) (*model, int, error) {
	cfg, err := config.Load(path, overrides)
	if err != nil {
		if cli.IsUsage(err) {
			return nil, cli.ExitUsage, err
		}
		return nil, cli.ExitFailure, err
	}
	spec, err := yolo.FromModelConfig(cfg.Model)
	if err != nil {
		return nil, cli.ExitFailure, fmt.Errorf("%s: %w", path, err)
	}
	if size == 0 {
		size = cfg.Eval.Size
	}
	if err := yolo.CheckInputSize(size, size); err != nil {
		return nil, cli.ExitUsage, fmt.Errorf("--size: %w", err)
	}
	inf, err := spec.Infer(size, size)
	if err != nil {
		return nil, cli.ExitFailure, fmt.Errorf("%s: %w", path, err)
	}
	return &model{path: path, spec: spec, inf: inf}, cli.ExitOK, nil
}

func (m *model) describe(withLayers bool) yolo.Description {
	return yolo.Describe(m.spec, m.inf, m.path, withLayers)
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var g grammar
	log := cli.Logger{Name: name, W: stderr}
	if _, code, done := cli.Parse(name, cli.Describe("Named layer outputs, shapes, parameters and FLOPs of a detector; teacher/student pairs with equal shapes.",
		"model-inspect -c pipelines/configs/demo_student.yml -t pipelines/configs/demo_teacher.yml --size 128",
		"model-inspect -c pipelines/configs/demo_student.yml --weights out/demo/distilled/model_final.ckpt"), &g, args, stderr); done {
		return code
	}
	if g.Size != 0 {
		if err := yolo.CheckInputSize(g.Size, g.Size); err != nil {
			log.Printf("error: --size: %v", err)
			return cli.ExitUsage
		}
	}
	if g.Weights != "" {
		if g.Teacher != "" {
			log.Printf("error: --weights and -t exclude each other")
			return cli.ExitUsage
		}
		return inspectWeights(ctx, g, stdout, log)
	}
	if g.Config == "" {
		log.Printf("error: missing flags: --config (-c FILE), or --weights FILE to list a weights file")
		return cli.ExitUsage
	}
	student, code, err := load(g.Config, g.Override, g.Size)
	if err != nil {
		log.Printf("error: %v", err)
		return code
	}
	var teacher *model
	var pairs []distill.ShapePair
	if g.Teacher != "" {
		size := student.inf.Input.H
		teacher, code, err = load(g.Teacher, nil, size)
		if err != nil {
			log.Printf("error: %v", err)
			return code
		}
		pairs = distill.MatchShapes(student.spec, student.inf, teacher.spec, teacher.inf, g.AllLayers)
	}
	if err := ctx.Err(); err != nil {
		return log.Fail(err)
	}
	if g.JSON {
		err = writeJSON(stdout, student, teacher, pairs)
	} else {
		err = writeTable(stdout, student, teacher, pairs)
	}
	if err != nil {
		return log.Fail(err)
	}
	return cli.ExitOK
}

// writeTable writes the student's table and, given a teacher, a line about
// the teacher and the table of pairs.
func writeTable(w io.Writer, s, t *model, pairs []distill.ShapePair) error {
	sd := s.describe(true)
	if err := sd.WriteTable(w); err != nil || t == nil {
		return err
	}
	fmt.Fprintf(w, "\n# teacher %s (%s), input %s: %d params, %.3f GFLOPs\n", t.spec.Name, t.path, t.inf.Input, t.inf.Params, float64(t.inf.FLOPs)/1e9)
	return distill.WriteShapePairs(w, pairs)
}

// writeJSON writes the student's description with its layers and, given a
// teacher, the teacher's without layers and the pairs, as one JSON line.
func writeJSON(w io.Writer, s, t *model, pairs []distill.ShapePair) error {
	out := struct {
		yolo.Description
		Teacher *yolo.Description   `json:"teacher,omitempty"`
		Pairs   []distill.ShapePair `json:"pairs,omitempty"`
	}{Description: s.describe(true)}
	if t != nil {
		td := t.describe(false)
		out.Teacher = &td
		out.Pairs = pairs
		if out.Pairs == nil {
			out.Pairs = []distill.ShapePair{}
		}
	}
	return json.NewEncoder(w).Encode(out)
}

// Command model-inspect prints a detector's named layer outputs with their
// shapes, parameter counts and FLOPs at one input size, and, given a teacher
// configuration, the teacher/student pairs of named feature points whose
// shapes match: the step PaddleSlim's distillation example does by hand.
//
//	model-inspect -c student.yml [--size N] [-t teacher.yml] [--all] [--json]
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
	"strings"
	"text/tabwriter"

	"yolodistill/pkg/cli"
	"yolodistill/pkg/config"
	"yolodistill/pkg/yolo"
)

const name = "model-inspect"

type grammar struct {
	Config    string   `short:"c" required:"" placeholder:"FILE" help:"model configuration (YAML)."`
	Override  []string `short:"o" sep:"none" placeholder:"KEY=VALUE" help:"override a configuration key of -c (repeatable)."`
	Size      int      `placeholder:"N" help:"square input size in pixels, a multiple of 32 (default: the configuration's eval.size)."`
	Teacher   string   `short:"t" placeholder:"FILE" help:"teacher configuration: also list the teacher/student pairs whose shapes match."`
	AllLayers bool     `name:"all" help:"with -t, pair every layer output, not only the named feature points (backbone.c3..c5, head.I.route/tip/out)."`
	JSON      bool     `name:"json" help:"write one JSON object instead of a table."`
}

func main() {
	ctx, stop := cli.SignalContext()
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// model is one loaded configuration, its Spec and the inference at the size.
type model struct {
	path string
	spec *yolo.Spec
	inf  *yolo.Inference
}

func load(path string, overrides []string, size int) (*model, int, error) {
	cfg, err := config.Load(path, overrides)
	if err != nil {
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

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var g grammar
	log := cli.Logger{Name: name, W: stderr}
	if _, code, done := cli.Parse(name, "Named layer outputs, shapes, parameters and FLOPs of a detector; teacher/student pairs with equal shapes.", &g, args, stderr); done {
		return code
	}
	if g.Size != 0 {
		if err := yolo.CheckInputSize(g.Size, g.Size); err != nil {
			log.Printf("error: --size: %v", err)
			return cli.ExitUsage
		}
	}
	student, code, err := load(g.Config, g.Override, g.Size)
	if err != nil {
		log.Printf("error: %v", err)
		return code
	}
	var teacher *model
	var pairs []pair
	if g.Teacher != "" {
		size := student.inf.Input.H
		teacher, code, err = load(g.Teacher, nil, size)
		if err != nil {
			log.Printf("error: %v", err)
			return code
		}
		pairs = matchShapes(student, teacher, g.AllLayers)
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

// pair is a student and a teacher output of equal shape.
type pair struct {
	Student  string `json:"student"`
	Teacher  string `json:"teacher"`
	Shape    []int  `json:"shape"`
	SameName bool   `json:"same_name"`
}

// points returns the names considered for pairing: the feature points, or
// every layer output.
func points(m *model, all bool) []string {
	if !all {
		return m.spec.FeaturePoints()
	}
	names := make([]string, len(m.spec.Layers))
	for i, l := range m.spec.Layers {
		names[i] = l.Name
	}
	return names
}

// matchShapes lists, in student order, every (student, teacher) pair of
// points with the same C, H and W; a student point with several teacher
// matches gives several pairs, the same-named one first.
func matchShapes(s, t *model, all bool) []pair {
	tNames := points(t, all)
	var out []pair
	for _, sn := range points(s, all) {
		si, _ := s.inf.Lookup(sn)
		var same, other []pair
		for _, tn := range tNames {
			ti, _ := t.inf.Lookup(tn)
			if ti.Shape != si.Shape {
				continue
			}
			p := pair{Student: sn, Teacher: tn, Shape: shapeSlice(si.Shape), SameName: sn == tn}
			if p.SameName {
				same = append(same, p)
			} else {
				other = append(other, p)
			}
		}
		out = append(append(out, same...), other...)
	}
	return out
}

func shapeSlice(s yolo.Shape) []int { return []int{s.C, s.H, s.W} }

// op describes a layer's operation compactly: "conv3x3/2 g32 relu",
// "conv1x1 bias", "maxpool3x3/2", "upsample2x", "concat", "add relu".
func op(l yolo.Layer) string {
	switch l.Kind {
	case yolo.ConvBNAct, yolo.Conv:
		c := l.Conv
		s := fmt.Sprintf("conv%dx%d", c.K, c.K)
		if c.Stride != 1 {
			s += fmt.Sprintf("/%d", c.Stride)
		}
		if c.Groups != 1 {
			s += fmt.Sprintf(" g%d", c.Groups)
		}
		if l.Kind == yolo.ConvBNAct {
			s += " bn " + l.Act.String()
		} else if l.Bias {
			s += " bias"
		}
		return s
	case yolo.MaxPool:
		p := l.Pool
		return fmt.Sprintf("maxpool%dx%d/%d", p.K, p.K, p.Stride)
	case yolo.AddAct:
		return "add " + l.Act.String()
	}
	return l.Kind.String()
}

func writeTable(w io.Writer, s, t *model, pairs []pair) error {
	fmt.Fprintf(w, "# %s (%s), input %s\n", s.spec.Name, s.path, s.inf.Input)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tOP\tINPUTS\tSHAPE\tPARAMS\tMFLOPS")
	prev := yolo.InputName
	for _, li := range s.inf.Layers {
		ins := strings.Join(li.Inputs, ",")
		if len(li.Inputs) == 1 && li.Inputs[0] == prev {
			ins = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%.1f\n", li.Name, op(li.Layer), ins, li.Shape, li.Params, float64(li.FLOPs)/1e6)
		prev = li.Name
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n# aliases\n")
	for _, a := range s.spec.Aliases {
		li, _ := s.inf.Lookup(a.Name)
		fmt.Fprintf(w, "%s = %s  %s\n", a.Name, a.Layer, li.Shape)
	}
	fmt.Fprintf(w, "\n# outputs\n")
	for i, o := range s.spec.Outputs {
		li, _ := s.inf.Lookup(o)
		fmt.Fprintf(w, "%s  %s  stride %d  %d anchors x (5 + %d classes)\n", o, li.Shape, s.spec.Strides[i], s.spec.AnchorsPerScale[i], s.spec.NumClasses)
	}
	fmt.Fprintf(w, "\n# total: %d params (+%d BN running stats), %.3f GFLOPs\n", s.inf.Params, s.inf.BNStats, float64(s.inf.FLOPs)/1e9)
	if t == nil {
		return nil
	}
	fmt.Fprintf(w, "\n# teacher %s (%s), input %s: %d params, %.3f GFLOPs\n", t.spec.Name, t.path, t.inf.Input, t.inf.Params, float64(t.inf.FLOPs)/1e9)
	fmt.Fprintf(w, "# pairs with equal shapes: %d\n", len(pairs))
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STUDENT\tTEACHER\tSHAPE")
	for _, p := range pairs {
		fmt.Fprintf(tw, "%s\t%s\t%dx%dx%d\n", p.Student, p.Teacher, p.Shape[0], p.Shape[1], p.Shape[2])
	}
	return tw.Flush()
}

type jsonLayer struct {
	Name    string   `json:"name"`
	Kind    string   `json:"kind"`
	Op      string   `json:"op"`
	Inputs  []string `json:"inputs"`
	Shape   []int    `json:"shape"`
	Params  int64    `json:"params"`
	BNStats int64    `json:"bn_stats"`
	FLOPs   int64    `json:"flops"`
}

type jsonAlias struct {
	Name  string `json:"name"`
	Layer string `json:"layer"`
	Shape []int  `json:"shape"`
}

type jsonOutput struct {
	Name    string `json:"name"`
	Shape   []int  `json:"shape"`
	Stride  int    `json:"stride"`
	Anchors int    `json:"anchors"`
}

type jsonTotals struct {
	Params  int64 `json:"params"`
	BNStats int64 `json:"bn_stats"`
	FLOPs   int64 `json:"flops"`
}

type jsonModel struct {
	Model      string       `json:"model"`
	Config     string       `json:"config"`
	Input      []int        `json:"input"`
	NumClasses int          `json:"num_classes"`
	Layers     []jsonLayer  `json:"layers,omitempty"`
	Aliases    []jsonAlias  `json:"aliases"`
	Outputs    []jsonOutput `json:"outputs"`
	Totals     jsonTotals   `json:"totals"`
}

func describe(m *model, withLayers bool) jsonModel {
	j := jsonModel{Model: m.spec.Name, Config: m.path, Input: shapeSlice(m.inf.Input), NumClasses: m.spec.NumClasses,
		Totals: jsonTotals{m.inf.Params, m.inf.BNStats, m.inf.FLOPs}}
	if withLayers {
		for _, li := range m.inf.Layers {
			j.Layers = append(j.Layers, jsonLayer{Name: li.Name, Kind: li.Kind.String(), Op: op(li.Layer), Inputs: li.Inputs,
				Shape: shapeSlice(li.Shape), Params: li.Params, BNStats: li.BNStats, FLOPs: li.FLOPs})
		}
	}
	for _, a := range m.spec.Aliases {
		li, _ := m.inf.Lookup(a.Name)
		j.Aliases = append(j.Aliases, jsonAlias{a.Name, a.Layer, shapeSlice(li.Shape)})
	}
	for i, o := range m.spec.Outputs {
		li, _ := m.inf.Lookup(o)
		j.Outputs = append(j.Outputs, jsonOutput{o, shapeSlice(li.Shape), m.spec.Strides[i], m.spec.AnchorsPerScale[i]})
	}
	return j
}

func writeJSON(w io.Writer, s, t *model, pairs []pair) error {
	out := struct {
		jsonModel
		Teacher *jsonModel `json:"teacher,omitempty"`
		Pairs   []pair     `json:"pairs,omitempty"`
	}{jsonModel: describe(s, true)}
	if t != nil {
		tm := describe(t, false)
		out.Teacher = &tm
		out.Pairs = pairs
		if out.Pairs == nil {
			out.Pairs = []pair{}
		}
	}
	return json.NewEncoder(w).Encode(out)
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"yolodistill/pkg/cli"
	"yolodistill/pkg/config"
	"yolodistill/pkg/detector"
	"yolodistill/pkg/weights"
)

// weightsReport is --weights's JSON output.
type weightsReport struct {
	File    string          `json:"file"`
	Format  string          `json:"format"`
	Tensors []weightsTensor `json:"tensors"` // the file's tensors, in file order
	// With -c:
	Model      string          `json:"model,omitempty"`
	Scheme     string          `json:"scheme,omitempty"`
	Loads      string          `json:"loads,omitempty"` // "the whole model", "the backbone only", ...
	Mapping    []weightsPair   `json:"mapping,omitempty"`
	Unexpected []weightsTensor `json:"unexpected,omitempty"`
	Skipped    []weights.Skip  `json:"skipped,omitempty"`
}

type weightsTensor struct {
	Name  string `json:"name"`
	Shape []int  `json:"shape"`
	DType string `json:"dtype"`
}

type weightsPair struct {
	Model     string `json:"model"`
	File      string `json:"file"`
	Part      string `json:"part"`
	Status    string `json:"status"` // "ok", "missing", "mis-shaped"
	Shape     []int  `json:"shape"`
	FileShape []int  `json:"file_shape,omitempty"`
}

// inspectWeights lists a weights file and, with -c, its mapping.
func inspectWeights(ctx context.Context, g grammar, w io.Writer, log cli.Logger) int {
	f, err := weights.Open(ctx, g.Weights, g.CacheDir)
	if err != nil {
		return log.Fail(err)
	}
	rep := weightsReport{File: g.Weights, Format: string(f.Format)}
	ts := f.Tensors
	if f.Checkpoint != nil {
		for _, s := range f.Checkpoint.Sections {
			for _, t := range s.Tensors {
				ts = append(ts, weights.Tensor{Name: t.Name, Shape: t.Shape, DType: "float32 (" + s.Name + ")"})
			}
		}
	}
	for _, t := range ts {
		rep.Tensors = append(rep.Tensors, weightsTensor{t.Name, t.Shape, t.DType})
	}
	if g.Config != "" {
		cfg, err := config.Load(g.Config, g.Override)
		if err != nil {
			return log.Fail(err)
		}
		d, err := detector.New(cfg)
		if err != nil {
			return log.Fail(fmt.Errorf("%s: %w", g.Config, err))
		}
		m, err := d.Map(f)
		if err != nil {
			return log.Fail(err)
		}
		rep.Model, rep.Scheme, rep.Loads, rep.Skipped = d.Spec.Name, string(m.Scheme), m.Loaded(), m.Skipped
		add := func(ps []weights.Pair, status string) {
			for _, p := range ps {
				rep.Mapping = append(rep.Mapping, weightsPair{p.Ours, p.Theirs, p.Part, status, p.Shape, p.FileShape})
			}
		}
		add(m.Found, "ok")
		add(m.Missing, "missing")
		add(m.ShapeDiff, "mis-shaped")
		for _, t := range m.Unexpected {
			rep.Unexpected = append(rep.Unexpected, weightsTensor{t.Name, t.Shape, t.DType})
		}
	}
	if g.JSON {
		err = json.NewEncoder(w).Encode(rep)
	} else {
		err = rep.writeTable(w)
	}
	if err != nil {
		return log.Fail(err)
	}
	return cli.ExitOK
}

func (r *weightsReport) writeTable(w io.Writer) error {
	fmt.Fprintf(w, "# %s: %s, %d tensors\n", r.File, r.Format, len(r.Tensors))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if r.Model == "" {
		fmt.Fprintln(tw, "NAME\tSHAPE\tDTYPE")
		for _, t := range r.Tensors {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", t.Name, dimsOf(t.Shape), t.DType)
		}
		return tw.Flush()
	}
	fmt.Fprintf(w, "# onto %s with %s names; loads: %s\n", r.Model, r.Scheme, r.Loads)
	fmt.Fprintln(tw, "MODEL\tFILE\tPART\tSHAPE\tSTATUS")
	for _, p := range r.Mapping {
		st := p.Status
		if p.Status == "mis-shaped" {
			st += " (file " + dimsOf(p.FileShape) + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.Model, p.File, p.Part, dimsOf(p.Shape), st)
	}
	for _, t := range r.Unexpected {
		fmt.Fprintf(tw, "-\t%s\t-\t%s\tunexpected\n", t.Name, dimsOf(t.Shape))
	}
	for _, s := range r.Skipped {
		fmt.Fprintf(tw, "-\t%s\t-\t-\tskipped (%s)\n", s.Name, s.Reason)
	}
	return tw.Flush()
}

func dimsOf(s []int) string {
	if len(s) == 0 {
		return "scalar"
	}
	out := ""
	for i, d := range s {
		if i > 0 {
			out += "x"
		}
		out += fmt.Sprint(d)
	}
	return out
}

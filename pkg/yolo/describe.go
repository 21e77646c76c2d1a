package yolo

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Dims returns the shape as a slice, [C, H, W].
func (s Shape) Dims() []int { return []int{s.C, s.H, s.W} }

// Op describes the layer's operation compactly: "conv3x3/2 g32 bn relu"
// (stride shown when not 1, groups when not 1), "conv1x1 bias",
// "maxpool3x3/2", "upsample2x", "concat", "add relu".
func (l Layer) Op() string {
	switch l.Kind {
	case ConvBNAct, Conv:
		c := l.Conv
		s := fmt.Sprintf("conv%dx%d", c.K, c.K)
		if c.Stride != 1 {
			s += fmt.Sprintf("/%d", c.Stride)
		}
		if c.Groups != 1 {
			s += fmt.Sprintf(" g%d", c.Groups)
		}
		if l.Kind == ConvBNAct {
			s += " bn " + l.Act.String()
		} else if l.Bias {
			s += " bias"
		}
		return s
	case MaxPool:
		p := l.Pool
		return fmt.Sprintf("maxpool%dx%d/%d", p.K, p.K, p.Stride)
	case AddAct:
		return "add " + l.Act.String()
	}
	return l.Kind.String()
}

// Description is a model at one input size as model-inspect reports it: its
// layers' outputs with shapes, parameters and FLOPs, the aliased feature
// maps, the detection outputs and the totals. Shapes are per image, [C, H, W];
// counts follow the package conventions (Params as torch counts them, BNStats
// apart, FLOPs = 2 x multiply-adds of the convolutions for one image). The
// JSON field names are model-inspect's --json output.
type Description struct {
	Model      string       `json:"model"`  // Spec.Name
	Config     string       `json:"config"` // where the model came from (a configuration file), for readers
	Input      []int        `json:"input"`  // [C, H, W] of the input image
	NumClasses int          `json:"num_classes"`
	Layers     []DescLayer  `json:"layers,omitempty"` // in Spec order; empty unless asked for
	Aliases    []DescAlias  `json:"aliases"`          // in Spec.Aliases order
	Outputs    []DescOutput `json:"outputs"`          // in Spec.Outputs order, deepest first
	Totals     DescTotals   `json:"totals"`
}

// DescLayer is one layer of a Description.
type DescLayer struct {
	Name    string   `json:"name"`
	Kind    string   `json:"kind"` // Kind.String
	Op      string   `json:"op"`   // Layer.Op
	Inputs  []string `json:"inputs"`
	Shape   []int    `json:"shape"` // output, [C, H, W]
	Params  int64    `json:"params"`
	BNStats int64    `json:"bn_stats"`
	FLOPs   int64    `json:"flops"`
}

// DescAlias is an alias of a Description with the shape of the layer it names.
type DescAlias struct {
	Name  string `json:"name"`
	Layer string `json:"layer"`
	Shape []int  `json:"shape"`
}

// DescOutput is a detection output of a Description: its shape, its stride
// relative to the input and its number of anchors.
type DescOutput struct {
	Name    string `json:"name"`
	Shape   []int  `json:"shape"`
	Stride  int    `json:"stride"`
	Anchors int    `json:"anchors"`
}

// DescTotals are a Description's sums over all layers.
type DescTotals struct {
	Params  int64 `json:"params"`
	BNStats int64 `json:"bn_stats"`
	FLOPs   int64 `json:"flops"`
}

// Describe describes spec as inferred at one input size (inf is
// spec.Infer's result); config names where spec came from. Layers are listed
// only when withLayers is set.
func Describe(spec *Spec, inf *Inference, config string, withLayers bool) Description {
	d := Description{Model: spec.Name, Config: config, Input: inf.Input.Dims(), NumClasses: spec.NumClasses,
		Totals: DescTotals{inf.Params, inf.BNStats, inf.FLOPs}}
	if withLayers {
		for _, li := range inf.Layers {
			d.Layers = append(d.Layers, DescLayer{Name: li.Name, Kind: li.Kind.String(), Op: li.Op(), Inputs: li.Inputs,
				Shape: li.Shape.Dims(), Params: li.Params, BNStats: li.BNStats, FLOPs: li.FLOPs})
		}
	}
	for _, a := range spec.Aliases {
		li, _ := inf.Lookup(a.Name)
		d.Aliases = append(d.Aliases, DescAlias{a.Name, a.Layer, li.Shape.Dims()})
	}
	for i, o := range spec.Outputs {
		li, _ := inf.Lookup(o)
		d.Outputs = append(d.Outputs, DescOutput{o, li.Shape.Dims(), spec.Strides[i], spec.AnchorsPerScale[i]})
	}
	return d
}

// dims formats a [C, H, W] slice as Shape.String does, "CxHxW".
func dims(s []int) string {
	parts := make([]string, len(s))
	for i, v := range s {
		parts[i] = fmt.Sprint(v)
	}
	return strings.Join(parts, "x")
}

// WriteTable writes the description as model-inspect's table: a header line
// "# MODEL (CONFIG), input CxHxW", one aligned row per layer (NAME, OP,
// INPUTS, SHAPE, PARAMS, MFLOPS; INPUTS is "-" when the one input is the
// row above, or the input image for the first row), then the aliases, the
// outputs and a totals line, each section after a blank line and a "# ..."
// heading.
func (d *Description) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "# %s (%s), input %s\n", d.Model, d.Config, dims(d.Input))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tOP\tINPUTS\tSHAPE\tPARAMS\tMFLOPS")
	prev := InputName
	for _, l := range d.Layers {
		ins := strings.Join(l.Inputs, ",")
		if len(l.Inputs) == 1 && l.Inputs[0] == prev {
			ins = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%.1f\n", l.Name, l.Op, ins, dims(l.Shape), l.Params, float64(l.FLOPs)/1e6)
		prev = l.Name
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n# aliases\n")
	for _, a := range d.Aliases {
		fmt.Fprintf(w, "%s = %s  %s\n", a.Name, a.Layer, dims(a.Shape))
	}
	fmt.Fprintf(w, "\n# outputs\n")
	for _, o := range d.Outputs {
		fmt.Fprintf(w, "%s  %s  stride %d  %d anchors x (5 + %d classes)\n", o.Name, dims(o.Shape), o.Stride, o.Anchors, d.NumClasses)
	}
	_, err := fmt.Fprintf(w, "\n# total: %d params (+%d BN running stats), %.3f GFLOPs\n", d.Totals.Params, d.Totals.BNStats, float64(d.Totals.FLOPs)/1e9)
	return err
}

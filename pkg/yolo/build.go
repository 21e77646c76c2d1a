package yolo

import (
	"fmt"

	"yolodistill/pkg/nn"
)

// Built is a Spec added to an nn.Builder: its tensors by layer name and alias,
// and the detection outputs.
type Built struct {
	// Tensors maps every layer name and alias of the Spec to its tensor.
	Tensors map[string]*nn.Tensor
	// Outputs are the Spec's detection outputs in Spec.Outputs order, deepest
	// first; Outputs[i]: [N, AnchorsPerScale[i]*(5+NumClasses), H/Strides[i], W/Strides[i]].
	Outputs []*nn.Tensor
	// Info is the Spec inferred at the builder's input size.
	Info *Inference
}

// Build adds spec's layers to b, in order, on b's input ([N, InChannels, H, W]),
// under the Spec's layer names, and registers its aliases with b.Name. Layer
// parameters are created in (or, for a second input size, shared from) the
// builder's ParamSet under nn's naming: a ConvBNAct layer L has "L.weight" and
// its BatchNorm parameters, a Conv layer L has "L.weight" and "L.bias".
// The Spec is checked with Infer at the input size first, so errors name the
// Spec layer; the builder's own first error is returned otherwise. b.Build
// is left to the caller (it may attach losses first).
func Build(spec *Spec, b *nn.Builder) (*Built, error) {
	in := b.Input()
	s := in.Shape()
	if err := b.Err(); err != nil {
		return nil, err
	}
	if len(s) != 4 || s[1] != spec.InChannels {
		return nil, fmt.Errorf("spec %s: builder input %v, want [N, %d, H, W]", spec.Name, s, spec.InChannels)
	}
	inf, err := spec.Infer(s[2], s[3])
	if err != nil {
		return nil, err
	}
	t := map[string]*nn.Tensor{InputName: in}
	for _, l := range spec.Layers {
		ins := make([]*nn.Tensor, len(l.Inputs))
		for i, name := range l.Inputs {
			ins[i] = t[name]
		}
		var y *nn.Tensor
		switch l.Kind {
		case ConvBNAct:
			y = b.ConvBNAct(l.Name, ins[0], convSpec(l.Conv), nnAct(l.Act))
		case Conv:
			y = b.Conv(l.Name, ins[0], convSpec(l.Conv), l.Bias)
		case MaxPool:
			y = b.MaxPool(l.Name, ins[0], l.Pool.K, l.Pool.Stride, l.Pool.Pad)
		case Upsample2x:
			y = b.Upsample2x(l.Name, ins[0])
		case Concat:
			y = b.Concat(l.Name, ins...)
		case AddAct:
			y = b.AddAct(l.Name, ins[0], ins[1], nnAct(l.Act))
		default:
			return nil, fmt.Errorf("spec %s: layer %s: unknown kind %d", spec.Name, l.Name, int(l.Kind))
		}
		if err := b.Err(); err != nil {
			return nil, fmt.Errorf("spec %s: layer %s: %w", spec.Name, l.Name, err)
		}
		t[l.Name] = y
	}
	for _, a := range spec.Aliases {
		t[a.Name] = b.Name(a.Name, t[a.Layer])
	}
	if err := b.Err(); err != nil {
		return nil, fmt.Errorf("spec %s: %w", spec.Name, err)
	}
	out := &Built{Tensors: t, Info: inf}
	for _, o := range spec.Outputs {
		out.Outputs = append(out.Outputs, t[spec.Resolve(o)])
	}
	return out, nil
}

func convSpec(c ConvParams) nn.ConvSpec {
	return nn.ConvSpec{Out: c.Out, K: c.K, Stride: c.Stride, Pad: c.Pad, Groups: c.Groups}
}

func nnAct(a Act) nn.Act {
	switch a {
	case ActReLU:
		return nn.ActReLU
	case ActLeaky:
		return nn.ActLeaky
	}
	return nn.ActNone
}

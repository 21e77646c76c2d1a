package checkpoint

import (
	"fmt"
	"slices"
	"strings"
)

// Format is the value of the "format" key of every checkpoint.
const Format = "yolodistill-checkpoint"

// Version is the format version this package writes and reads.
const Version = 1

// Conventional section names.
const (
	SectionParams    = "params"    // trainable weights
	SectionBNStats   = "bn_stats"  // BatchNorm running mean / variance
	SectionOptimizer = "optimizer" // solver state (momentum buffers)
)

// Tensor is one named float32 tensor. Data is row-major in the order of
// Shape and has exactly product(Shape) elements (1 for an empty shape, a
// scalar).
type Tensor struct {
	Name  string
	Shape []int
	Data  []float32
}

// NumElements returns product(shape); 1 for an empty shape. It returns -1
// when a dimension is negative or the product overflows an int.
func NumElements(shape []int) int {
	n := 1
	for _, d := range shape {
		if d < 0 {
			return -1
		}
		if d != 0 && n > (1<<62)/d {
			return -1
		}
		n *= d
	}
	return n
}

// Section is a named, ordered group of tensors with distinct names.
type Section struct {
	Name    string
	Tensors []Tensor
}

// State is the training loop's state at the time of the checkpoint.
type State struct {
	// Iteration is the number of optimizer steps completed.
	Iteration int64
	// RNG holds every random generator's state by name, opaque to this
	// package (e.g. "init", "data", "augment").
	RNG map[string][]byte
	// DataOrder is the data loader's position (epoch, permutation, index),
	// opaque to this package.
	DataOrder []byte
}

// Checkpoint is the whole content of a checkpoint file.
type Checkpoint struct {
	// Config is the configuration's canonical YAML (config.Config.YAML).
	Config string
	State  State
	// Meta is free-form text metadata (e.g. "model_hash", "created",
	// "best_metric").
	Meta     map[string]string
	Sections []Section

	// Path is the file Load read the checkpoint from ("" otherwise); not
	// stored. Check's errors name it.
	Path string
}

// Section returns the section named name, or nil.
func (c *Checkpoint) Section(name string) *Section {
	for i := range c.Sections {
		if c.Sections[i].Name == name {
			return &c.Sections[i]
		}
	}
	return nil
}

// Add appends a tensor to the named section, creating the section at the
// end when absent. It does not copy data. It returns an error when the
// section already has a tensor of that name or len(data) does not match the
// shape.
func (c *Checkpoint) Add(section, name string, shape []int, data []float32) error {
	if n := NumElements(shape); n < 0 || n != len(data) {
		return fmt.Errorf("checkpoint: tensor %s: %d values for shape %v", name, len(data), shape)
	}
	s := c.Section(section)
	if s == nil {
		c.Sections = append(c.Sections, Section{Name: section})
		s = &c.Sections[len(c.Sections)-1]
	}
	if s.Tensor(name) != nil {
		return fmt.Errorf("checkpoint: section %s: duplicate tensor %s", section, name)
	}
	s.Tensors = append(s.Tensors, Tensor{Name: name, Shape: slices.Clone(shape), Data: data})
	return nil
}

// Tensor returns the tensor named name in s, or nil.
func (s *Section) Tensor(name string) *Tensor {
	for i := range s.Tensors {
		if s.Tensors[i].Name == name {
			return &s.Tensors[i]
		}
	}
	return nil
}

// Tensor returns the tensor named name in section, or nil.
func (c *Checkpoint) Tensor(section, name string) *Tensor {
	s := c.Section(section)
	if s == nil {
		return nil
	}
	return s.Tensor(name)
}

// NumParams is the total number of float32 values in a section (0 when
// absent).
func (c *Checkpoint) NumParams(section string) int {
	s := c.Section(section)
	if s == nil {
		return 0
	}
	n := 0
	for _, t := range s.Tensors {
		n += len(t.Data)
	}
	return n
}

// TensorSpec names a tensor the model expects and its shape.
type TensorSpec struct {
	Section string
	Name    string
	Shape   []int
}

// MismatchKind says how a checkpoint tensor differs from the model's.
type MismatchKind int

const (
	Missing    MismatchKind = iota // in the model, not in the checkpoint
	Unexpected                     // in the checkpoint, not in the model
	ShapeDiff                      // in both, with different shapes
)

// Mismatch is one difference between a checkpoint and a model.
type Mismatch struct {
	Kind    MismatchKind
	Section string
	Name    string
	InFile  []int // shape in the checkpoint (nil for Missing)
	InModel []int // shape in the model (nil for Unexpected)
}

func (m Mismatch) String() string {
	name := m.Name
	if m.Section != SectionParams {
		name = m.Section + " " + m.Name
	}
	switch m.Kind {
	case Missing:
		return fmt.Sprintf("%s: shape %v in model, missing from checkpoint", name, m.InModel)
	case Unexpected:
		return fmt.Sprintf("%s: shape %v in checkpoint, not in model", name, m.InFile)
	default:
		return fmt.Sprintf("%s: shape %v in checkpoint, %v in model", name, m.InFile, m.InModel)
	}
}

// MismatchError lists every difference Check found.
type MismatchError struct {
	File       string // "" when unknown
	Mismatches []Mismatch
}

func (e *MismatchError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File + ": ")
	}
	fmt.Fprintf(&b, "checkpoint does not fit the model (%d differences)", len(e.Mismatches))
	const maxShown = 20
	for i, m := range e.Mismatches {
		if i == maxShown {
			fmt.Fprintf(&b, "\n  ... and %d more", len(e.Mismatches)-maxShown)
			break
		}
		b.WriteString("\n  " + m.String())
	}
	return b.String()
}

// Diff compares the checkpoint's tensors with expected. Only the sections
// that expected mentions are compared (a model loading weights for
// inference may list only params and bn_stats); within each, every tensor
// must exist in both with the same shape. The result lists model order
// first (Missing, ShapeDiff), then Unexpected tensors in file order.
func (c *Checkpoint) Diff(expected []TensorSpec) []Mismatch {
	var out []Mismatch
	want := map[string]map[string]bool{}
	var secOrder []string
	for _, e := range expected {
		if want[e.Section] == nil {
			want[e.Section] = map[string]bool{}
			secOrder = append(secOrder, e.Section)
		}
		want[e.Section][e.Name] = true
		t := c.Tensor(e.Section, e.Name)
		switch {
		case t == nil:
			out = append(out, Mismatch{Kind: Missing, Section: e.Section, Name: e.Name, InModel: e.Shape})
		case !slices.Equal(t.Shape, e.Shape):
			out = append(out, Mismatch{Kind: ShapeDiff, Section: e.Section, Name: e.Name, InFile: t.Shape, InModel: e.Shape})
		}
	}
	for _, sec := range secOrder {
		s := c.Section(sec)
		if s == nil {
			continue
		}
		for _, t := range s.Tensors {
			if !want[sec][t.Name] {
				out = append(out, Mismatch{Kind: Unexpected, Section: sec, Name: t.Name, InFile: t.Shape})
			}
		}
	}
	return out
}

// Check returns a *MismatchError when Diff finds any difference, else nil.
func (c *Checkpoint) Check(expected []TensorSpec) error {
	if d := c.Diff(expected); len(d) > 0 {
		return &MismatchError{File: c.Path, Mismatches: d}
	}
	return nil
}

// Target is a model tensor to fill from a checkpoint: Dst has
// product(Shape) elements and receives a copy of the checkpoint's data.
type Target struct {
	Section string
	Name    string
	Shape   []int
	Dst     []float32
}

// LoadInto copies every target's data from the checkpoint. With strict, any
// difference (missing, unexpected or differently shaped tensor in the
// targets' sections) is a *MismatchError and nothing is copied. Without
// strict (loading pretrained weights), the tensors that fit are copied and
// the differences are returned for the caller to report; the error is then
// nil. A target whose Dst length does not match its Shape is a programming
// error and panics.
func (c *Checkpoint) LoadInto(targets []Target, strict bool) ([]Mismatch, error) {
	specs := make([]TensorSpec, len(targets))
	for i, t := range targets {
		if NumElements(t.Shape) != len(t.Dst) {
			panic(fmt.Sprintf("checkpoint.LoadInto: target %s has %d elements for shape %v", t.Name, len(t.Dst), t.Shape))
		}
		specs[i] = TensorSpec{Section: t.Section, Name: t.Name, Shape: t.Shape}
	}
	diff := c.Diff(specs)
	if strict && len(diff) > 0 {
		return diff, &MismatchError{File: c.Path, Mismatches: diff}
	}
	for _, t := range targets {
		src := c.Tensor(t.Section, t.Name)
		if src == nil || !slices.Equal(src.Shape, t.Shape) {
			continue
		}
		copy(t.Dst, src.Data)
	}
	return diff, nil
}

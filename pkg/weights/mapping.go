package weights

import (
	"fmt"
	"slices"
	"strings"

	"yolodistill/pkg/checkpoint"
	"yolodistill/pkg/yolo"
)

// Pair is one model tensor and what the file holds for it.
type Pair struct {
	Section string // checkpoint.SectionParams or SectionBNStats
	Ours    string // the model's name
	Theirs  string // the file's name (the scheme's canonical name when Missing)
	Part    string // PartBackbone or PartHead
	Shape   []int  // in the model
	// FileShape and Data are the file's (nil when missing).
	FileShape []int
	Data      []float32
}

// Skip is a file tensor that names no model tensor but is harmless.
type Skip struct {
	Name   string
	Reason string // "training state", "ImageNet classifier", "not floating point"
}

// Mapping is a File laid onto a model: what each model tensor gets.
type Mapping struct {
	Source string
	Format Format
	Scheme Scheme
	// Layout is the model's layout ("paddle" or "torch"), for hints.
	Layout string
	// Found are the model tensors the file holds with the right shape,
	// Missing those it does not hold, ShapeDiff those it holds with another
	// shape (or as integers), in model order.
	Found, Missing, ShapeDiff []Pair
	// Unexpected are file tensors that name no model tensor and are not
	// skipped; Skipped those that are harmless.
	Unexpected []Tensor
	Skipped    []Skip
	total      map[string]int
	found      map[string]int
}

// Map lays f onto the model spec, whose tensors (params and BatchNorm
// statistics, as pkg/detector lists them) are want. The naming scheme is the
// one under which most of the model's tensors are found in f (a
// yolodistill checkpoint always uses ours). Leading "module." prefixes
// (torch DataParallel) are dropped. It fails only when no tensor of the model
// is found under any scheme; use Whole or Parts to judge the result.
func Map(spec *yolo.Spec, want []checkpoint.TensorSpec, f *File) (*Mapping, error) {
	tensors := f.flat()
	byName := map[string]*Tensor{}
	prefixed := len(tensors) > 0
	for i := range tensors {
		if !strings.HasPrefix(tensors[i].Name, "module.") {
			prefixed = false
		}
	}
	for i := range tensors {
		if prefixed {
			tensors[i].Name = strings.TrimPrefix(tensors[i].Name, "module.")
		}
		byName[tensors[i].Name] = &tensors[i]
	}
	shapes := map[string]checkpoint.TensorSpec{}
	for _, w := range want {
		shapes[w.Name] = w
	}
	layout := yolo.LayoutTorch
	if strings.HasSuffix(spec.Name, "-"+yolo.LayoutPaddle) {
		layout = yolo.LayoutPaddle
	}
	try := schemes
	if f.Checkpoint != nil {
		try = []Scheme{SchemeOurs}
	}
	var best []binding
	bestHits, bestScheme := 0, Scheme("")
	for _, s := range try {
		bs := bindings(spec, s)
		hits := 0
		for _, b := range bs {
			if lookup(byName, b) != nil {
				hits++
			}
		}
		if hits > bestHits {
			best, bestHits, bestScheme = bs, hits, s
		}
	}
	if bestHits == 0 {
		var first []string
		for i := 0; i < len(tensors) && i < 5; i++ {
			first = append(first, tensors[i].Name)
		}
		return nil, fmt.Errorf("%s: no tensor of %s found under any naming this tool knows (yolodistill, PaddleDetection, torch_reference.py, torchvision); the file's first names: %s",
			f.Source, spec.Name, strings.Join(first, ", "))
	}
	m := &Mapping{Source: f.Source, Format: f.Format, Scheme: bestScheme, Layout: layout, total: map[string]int{}, found: map[string]int{}}
	used := map[string]bool{}
	for _, b := range best {
		w, ok := shapes[b.ours]
		if !ok {
			continue // pkg/nn names every tensor as bindings does; a spec without it is a bug caught by tests
		}
		p := Pair{Section: w.Section, Ours: b.ours, Theirs: b.theirs[0], Part: b.part, Shape: w.Shape}
		m.total[b.part]++
		t := lookup(byName, b)
		switch {
		case t == nil:
			m.Missing = append(m.Missing, p)
			continue
		case t.Data == nil || !slices.Equal(t.Shape, w.Shape):
			p.Theirs, p.FileShape = t.Name, t.Shape
			if p.FileShape == nil {
				p.FileShape = []int{}
			}
			m.ShapeDiff = append(m.ShapeDiff, p)
		default:
			p.Theirs, p.FileShape, p.Data = t.Name, t.Shape, t.Data
			m.Found = append(m.Found, p)
			m.found[b.part]++
		}
		used[t.Name] = true
	}
	for i := range tensors {
		t := &tensors[i]
		if used[t.Name] {
			continue
		}
		if r := skipReason(t); r != "" {
			m.Skipped = append(m.Skipped, Skip{t.Name, r})
		} else {
			m.Unexpected = append(m.Unexpected, Tensor{Name: t.Name, Shape: t.Shape, DType: t.DType})
		}
	}
	return m, nil
}

func lookup(byName map[string]*Tensor, b binding) *Tensor {
	for _, n := range b.theirs {
		if t := byName[n]; t != nil {
			return t
		}
	}
	return nil
}

// flat lists the file's tensors; for a checkpoint, those of its params and
// bn_stats sections (optimizer state is skipped as training state).
func (f *File) flat() []Tensor {
	if f.Checkpoint == nil {
		return slices.Clone(f.Tensors)
	}
	var out []Tensor
	for _, s := range f.Checkpoint.Sections {
		for _, t := range s.Tensors {
			name := t.Name
			if s.Name != checkpoint.SectionParams && s.Name != checkpoint.SectionBNStats {
				name = "@" + s.Name + "/" + name // training state (optimizer slots)
			}
			out = append(out, Tensor{Name: name, Shape: t.Shape, DType: "float32", Data: t.Data})
		}
	}
	return out
}

// Covers returns how many of the part's tensors the file holds with the
// right shape, and how many the model has.
func (m *Mapping) Covers(part string) (found, total int) { return m.found[part], m.total[part] }

// Touches reports whether the file holds any tensor of the part (found or
// mis-shaped).
func (m *Mapping) Touches(part string) bool {
	if m.found[part] > 0 {
		return true
	}
	for _, p := range m.ShapeDiff {
		if p.Part == part {
			return true
		}
	}
	return false
}

// Whole returns nil when the file holds every tensor of the model with the
// right shape and nothing unexpected; otherwise a *MismatchError (need
// "the whole model") listing the differences.
func (m *Mapping) Whole() error {
	if len(m.Missing) == 0 && len(m.ShapeDiff) == 0 && len(m.Unexpected) == 0 && m.layoutHint() == "" {
		return nil
	}
	return &MismatchError{M: m, Need: "the whole model", Missing: m.Missing}
}

// Parts returns nil when every part the file touches (backbone, head) is
// complete with the right shapes and nothing is unexpected: the rule for
// pretrained weights, where a backbone alone is fine. Otherwise a
// *MismatchError listing the missing tensors of the touched parts, the
// mis-shaped and the unexpected ones.
func (m *Mapping) Parts() error {
	var miss []Pair
	for _, p := range m.Missing {
		if m.Touches(p.Part) {
			miss = append(miss, p)
		}
	}
	if len(miss) == 0 && len(m.ShapeDiff) == 0 && len(m.Unexpected) == 0 && (m.layoutHint() == "" || !m.Touches(PartHead)) {
		return nil
	}
	return &MismatchError{M: m, Need: "every tensor of each part it holds (backbone, head)", Missing: miss}
}

// Loaded names the parts the file fills: "the whole model", "the backbone
// only", "the head only" or "nothing".
func (m *Mapping) Loaded() string {
	b, h := m.Touches(PartBackbone), m.Touches(PartHead)
	switch {
	case b && h:
		return "the whole model"
	case b:
		return "the backbone only"
	case h:
		return "the head only"
	}
	return "nothing"
}

// Checkpoint returns the found tensors under the model's names, in sections
// params and bn_stats (data not copied), ready for
// checkpoint.Checkpoint.LoadInto. Path is the mapping's source.
func (m *Mapping) Checkpoint() *checkpoint.Checkpoint {
	c := &checkpoint.Checkpoint{Path: m.Source, Meta: map[string]string{}}
	for _, p := range m.Found {
		if err := c.Add(p.Section, p.Ours, p.Shape, p.Data); err != nil {
			panic(err) // names are unique and shapes checked by Map
		}
	}
	return c
}

// Summary is one line for logs: format, naming, parts and skipped tensors.
func (m *Mapping) Summary() string {
	bf, bt := m.Covers(PartBackbone)
	hf, ht := m.Covers(PartHead)
	s := fmt.Sprintf("%s, %s names: %s (backbone %d/%d, head %d/%d tensors)", m.Format, m.Scheme, m.Loaded(), bf, bt, hf, ht)
	if len(m.Skipped) > 0 {
		reasons := map[string]int{}
		var order []string
		for _, k := range m.Skipped {
			if reasons[k.Reason] == 0 {
				order = append(order, k.Reason)
			}
			reasons[k.Reason]++
		}
		var parts []string
		for _, r := range order {
			parts = append(parts, fmt.Sprintf("%d %s", reasons[r], r))
		}
		s += "; skipped " + strings.Join(parts, ", ")
	}
	return s
}

// MismatchError says why a Mapping does not give what a caller needs.
type MismatchError struct {
	M       *Mapping
	Need    string
	Missing []Pair
}

func (e *MismatchError) Error() string {
	m := e.M
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s with %s names does not fit the model (needed: %s; the file holds %s)", m.Source, m.Format, m.Scheme, e.Need, m.Loaded())
	if e.Need == "the whole model" && m.Loaded() == "the backbone only" && len(m.ShapeDiff) == 0 && len(m.Unexpected) == 0 {
		b.WriteString(": a backbone alone cannot run; train a detector from it first (detect-train --pretrained FILE)")
	}
	const shown = 12
	list := func(title string, n int, line func(i int) string) {
		if n == 0 {
			return
		}
		fmt.Fprintf(&b, "\n  %d %s:", n, title)
		for i := 0; i < n && i < shown; i++ {
			b.WriteString("\n    " + line(i))
		}
		if n > shown {
			fmt.Fprintf(&b, "\n    ... and %d more", n-shown)
		}
	}
	// A part the file does not touch at all is one line, not every tensor.
	var missing []Pair
	for _, part := range []string{PartBackbone, PartHead} {
		if _, total := m.Covers(part); total > 0 && !m.Touches(part) && slices.ContainsFunc(e.Missing, func(p Pair) bool { return p.Part == part }) {
			fmt.Fprintf(&b, "\n  the file holds nothing of the %s (%d tensors)", part, total)
		}
	}
	for _, p := range e.Missing {
		if m.Touches(p.Part) {
			missing = append(missing, p)
		}
	}
	list("missing from the file", len(missing), func(i int) string {
		p := missing[i]
		return fmt.Sprintf("%s (file name %s) shape %v", p.Ours, p.Theirs, p.Shape)
	})
	list("mis-shaped", len(m.ShapeDiff), func(i int) string {
		p := m.ShapeDiff[i]
		return fmt.Sprintf("%s (file name %s): %v in the file, %v in the model", p.Ours, p.Theirs, p.FileShape, p.Shape)
	})
	list("unexpected (in the file, not in the model)", len(m.Unexpected), func(i int) string {
		t := m.Unexpected[i]
		return fmt.Sprintf("%s shape %v", t.Name, t.Shape)
	})
	if h := m.layoutHint(); h != "" {
		b.WriteString("\n  " + h)
	}
	return b.String()
}

// layoutHint suggests model.layout when the naming implies the other one.
func (m *Mapping) layoutHint() string {
	switch {
	case m.Scheme == SchemePaddle && m.Layout != yolo.LayoutPaddle:
		return "PaddleDetection weights need model.layout: paddle (its MobileNetV1 feeds the head from conv3_2 and conv4_2, its ResNet18/34 has a res2a projection shortcut)"
	case m.Scheme == SchemeTorchvision && m.Layout == yolo.LayoutPaddle:
		return "torchvision's ResNet has no res2a projection shortcut: use model.layout: torch"
	}
	return ""
}

package distill

import (
	"fmt"
	"io"
	"slices"

	"yolodistill/pkg/config"
)

// Ref names one tensor a distillation term reads, on the student or the
// teacher side: head output Head (0 = deepest scale, Spec.Outputs order) when
// Head >= 0, else the named tensor Name (a layer name or alias of the model,
// as model-inspect lists them, e.g. "backbone.c4" or "head.1.route").
type Ref struct {
	Head int
	Name string
}

// HeadRef is head output i.
func HeadRef(i int) Ref { return Ref{Head: i} }

// NamedRef is the named feature map name.
func NamedRef(name string) Ref { return Ref{Head: -1, Name: name} }

// String gives "head output i" or the name.
func (r Ref) String() string {
	if r.Head >= 0 {
		return fmt.Sprintf("head output %d", r.Head)
	}
	return r.Name
}

// Term is one distillation loss of a recipe: Loss over the Student tensors
// (in order, each passed first through a learned 1x1 adapter convolution to
// the teacher tensor's channel count where Adapter[i] is set) against the
// Teacher tensors.
type Term struct {
	// Name is the loss's name in the training graph ("distill.l2",
	// "distill.pair.0", ...); unique within a recipe.
	Name    string
	Loss    Loss
	Student []Ref
	Teacher []Ref
	// Adapter[i]: student tensor i goes through a 1x1 convolution (with
	// bias) to the channel count of Teacher[i] (a pair whose config sets
	// adapter: true). len(Adapter) == len(Student).
	Adapter []bool
}

// Recipe is the distillation a student configuration asks for
// (distill.loss, weight, pairs, temperatures), as losses over named tensors.
// It imports no engine: a tool binds each Term to its graph (nn's
// Builder.Loss with a Binding) and supplies the teacher's tensors, online
// from a teacher model or offline from soft targets.
type Recipe struct {
	Kind  string // distill.loss: "none", "l2", "fine_grained", "fsp", "soft_label", "pairs"
	Terms []Term
}

// NewRecipe makes the recipe of cfg.Distill for a student with numHeads head
// outputs and numClasses classes. The mapping, by distill.loss:
//
//   - "none": no terms.
//   - "l2": one term over every head output (student i against teacher i),
//     weight distill.weight (PaddleDetection's VOC recipe uses 100).
//   - "fine_grained": one term over every head output (split_distill),
//     weight distill.weight (the COCO recipe uses 1000).
//   - "soft_label": one term; with pairs, over the pairs' tensors, else over
//     every head output; temperatures distill.student_temperature and
//     teacher_temperature, softmax over the last axis (PaddleSlim).
//   - "fsp": one term; pairs are taken two by two: pairs 2k and 2k+1 give
//     the FSP matrix of (student 2k, student 2k+1) against (teacher 2k,
//     teacher 2k+1); an odd number of pairs is an error.
//   - "pairs": one term per pair, kind pairs[i].kind, weight
//     distill.weight * pairs[i].weight (temperature of "kl":
//     distill.teacher_temperature).
//
// A combined loss ("l2+fine_grained") is the terms of each part, made as
// above with distill.weight = distill.weights[i] (or the part's default
// weight when distill.weights is empty); Kind is the whole string.
//
// A weight of 0 selects the kind's DefaultWeight (as New does). workers is
// Options.Workers. The caller closes the losses with Close.
func NewRecipe(dc config.DistillConfig, numHeads, numClasses, workers int) (*Recipe, error) {
	if parts := dc.LossParts(); len(parts) > 1 {
		return newCombined(dc, parts, numHeads, numClasses, workers)
	}
	r := &Recipe{Kind: dc.Loss}
	heads := func() (s, t []Ref) {
		for i := 0; i < numHeads; i++ {
			s = append(s, HeadRef(i))
			t = append(t, HeadRef(i))
		}
		return s, t
	}
	pairRefs := func(ps []config.PairConfig) (s, t []Ref, ad []bool) {
		for _, p := range ps {
			s = append(s, NamedRef(p.Student))
			t = append(t, NamedRef(p.Teacher))
			ad = append(ad, p.Adapter)
		}
		return s, t, ad
	}
	opt := Options{Weight: dc.Weight, NumClasses: numClasses, StudentTemperature: dc.StudentTemperature,
		TeacherTemperature: dc.TeacherTemperature, Workers: workers}
	add := func(name string, l Loss, err error, s, t []Ref, ad []bool) error {
		if err != nil {
			return fmt.Errorf("distill.loss %s: %w", dc.Loss, err)
		}
		if ad == nil {
			ad = make([]bool, len(s))
		}
		r.Terms = append(r.Terms, Term{Name: name, Loss: l, Student: s, Teacher: t, Adapter: ad})
		return nil
	}
	var err error
	switch dc.Loss {
	case "", "none":
		r.Kind = "none"
	case "l2", "fine_grained":
		if numHeads < 1 {
			return nil, fmt.Errorf("distill.loss %s: the student has no head outputs", dc.Loss)
		}
		l, e := New(dc.Loss, opt)
		s, t := heads()
		err = add("distill."+dc.Loss, l, e, s, t, nil)
	case "soft_label":
		l, e := New("soft_label", opt)
		if len(dc.Pairs) > 0 {
			s, t, ad := pairRefs(dc.Pairs)
			err = add("distill.soft_label", l, e, s, t, ad)
		} else {
			s, t := heads()
			err = add("distill.soft_label", l, e, s, t, nil)
		}
	case "fsp":
		if len(dc.Pairs) == 0 || len(dc.Pairs)%2 != 0 {
			return nil, fmt.Errorf("distill.pairs: fsp takes the pairs two by two (feature maps a and b of one FSP matrix) and needs an even, non-zero number of them; %d listed", len(dc.Pairs))
		}
		l, e := New("fsp", opt)
		s, t, ad := pairRefs(dc.Pairs)
		err = add("distill.fsp", l, e, s, t, ad)
	case "pairs":
		if len(dc.Pairs) == 0 {
			return nil, fmt.Errorf("distill.loss is pairs but distill.pairs is empty")
		}
		for i, p := range dc.Pairs {
			w := dc.Weight * p.Weight
			if dc.Weight == 0 {
				w = p.Weight
			}
			po := opt
			po.Weight = w
			po.Temperature = dc.TeacherTemperature
			l, e := NewPair(p.Kind, po)
			if w == 0 && e == nil {
				continue // a pair of weight 0 contributes nothing
			}
			if e = add(fmt.Sprintf("distill.pair.%d", i), l, e, []Ref{NamedRef(p.Student)}, []Ref{NamedRef(p.Teacher)}, []bool{p.Adapter}); e != nil {
				err = fmt.Errorf("distill.pairs.%d: %w", i, e)
				break
			}
		}
	default:
		return nil, fmt.Errorf("distill.loss %q: unknown (want none, l2, fine_grained, fsp, soft_label or pairs)", dc.Loss)
	}
	if err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// newCombined makes the recipe of a combined loss: the terms of every part.
func newCombined(dc config.DistillConfig, parts []string, numHeads, numClasses, workers int) (*Recipe, error) {
	if n := len(dc.Weights); n != 0 && n != len(parts) {
		return nil, fmt.Errorf("distill.weights: %d weights for the %d parts of distill.loss %s", n, len(parts), dc.Loss)
	}
	r := &Recipe{Kind: dc.Loss}
	for i, p := range parts {
		if p == "" || p == "none" || slices.Contains(parts[:i], p) {
			return nil, fmt.Errorf("distill.loss %q: part %d is %q (want distinct kinds of l2, fine_grained, fsp, soft_label, pairs)", dc.Loss, i+1, p)
		}
		sub := dc
		sub.Loss, sub.Weights, sub.Weight = p, nil, 0
		if len(dc.Weights) > 0 {
			sub.Weight = dc.Weights[i]
			if sub.Weight == 0 {
				continue // a part of weight 0 contributes nothing
			}
		}
		pr, err := NewRecipe(sub, numHeads, numClasses, workers)
		if err != nil {
			r.Close()
			return nil, err
		}
		r.Terms = append(r.Terms, pr.Terms...)
	}
	return r, nil
}

// Has reports whether the recipe's loss is kind or a combined loss with kind
// as a part.
func (r *Recipe) Has(kind string) bool {
	return slices.Contains(config.DistillConfig{Loss: r.Kind}.LossParts(), kind)
}

// TeacherFeatures lists the named teacher tensors (not head outputs) the
// recipe reads, each once, in order of first use: what a soft-target file
// must store as feature maps.
func (r *Recipe) TeacherFeatures() []string {
	var out []string
	for _, t := range r.Terms {
		for _, ref := range t.Teacher {
			if ref.Head < 0 && !slices.Contains(out, ref.Name) {
				out = append(out, ref.Name)
			}
		}
	}
	return out
}

// TeacherRefs lists every teacher tensor the recipe reads, each once, in order
// of first use.
func (r *Recipe) TeacherRefs() []Ref {
	var out []Ref
	for _, t := range r.Terms {
		for _, ref := range t.Teacher {
			if !slices.Contains(out, ref) {
				out = append(out, ref)
			}
		}
	}
	return out
}

// UsesHeads reports whether the recipe reads teacher head outputs (so the
// teacher's anchors and masks must be the student's).
func (r *Recipe) UsesHeads() bool {
	for _, ref := range r.TeacherRefs() {
		if ref.Head >= 0 {
			return true
		}
	}
	return false
}

// CheckSparse refuses a recipe that needs every head logit of the teacher,
// which sparse soft targets do not hold: every term over head outputs but
// fine_grained, which skips the box and class terms where the teacher's
// logits were not stored (FineGrained.SetMask).
func (r *Recipe) CheckSparse() error {
	for _, t := range r.Terms {
		if _, ok := t.Loss.(*FineGrained); ok {
			continue
		}
		for _, ref := range t.Teacher {
			if ref.Head >= 0 {
				return fmt.Errorf("distill.loss %s: sparse soft targets carry box and class logits only where the teacher is confident; the %s loss reads every logit: dump dense (optionally --fp16)", r.Kind, r.Kind)
			}
		}
	}
	return nil
}

// Close closes every term's loss that holds worker goroutines.
func (r *Recipe) Close() {
	for _, t := range r.Terms {
		if c, ok := t.Loss.(io.Closer); ok {
			c.Close()
		}
	}
}

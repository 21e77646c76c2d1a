package distill

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"yolodistill/pkg/yolo"
)

// ShapePair is a student and a teacher tensor of equal per-image shape, a
// candidate for a pair loss (a config's distill.pairs) that needs no
// adapter. The JSON field names are model-inspect's --json output.
type ShapePair struct {
	Student  string `json:"student"`   // a student layer name or alias
	Teacher  string `json:"teacher"`   // a teacher layer name or alias
	Shape    []int  `json:"shape"`     // [C, H, W], the same on both sides
	SameName bool   `json:"same_name"` // Student == Teacher
}

// PairPoints returns the names of spec considered for pairing: its feature
// points (Spec.FeaturePoints: backbone.c3..c5, head.I.route/tip/out), or
// with all every layer name, in Spec order.
func PairPoints(spec *yolo.Spec, all bool) []string {
	if !all {
		return spec.FeaturePoints()
	}
	names := make([]string, len(spec.Layers))
	for i, l := range spec.Layers {
		names[i] = l.Name
	}
	return names
}

// MatchShapes lists, in student order, every (student, teacher) pair of
// PairPoints with the same C, H and W; a student point with several teacher
// matches gives several pairs, the same-named one first, the others in
// teacher order. The Inferences are each Spec's at one and the same input
// size (Spec.Infer).
func MatchShapes(student *yolo.Spec, studentInf *yolo.Inference, teacher *yolo.Spec, teacherInf *yolo.Inference, all bool) []ShapePair {
	tNames := PairPoints(teacher, all)
	var out []ShapePair
	for _, sn := range PairPoints(student, all) {
		si, _ := studentInf.Lookup(sn)
		var same, other []ShapePair
		for _, tn := range tNames {
			ti, _ := teacherInf.Lookup(tn)
			if ti.Shape != si.Shape {
				continue
			}
			p := ShapePair{Student: sn, Teacher: tn, Shape: si.Shape.Dims(), SameName: sn == tn}
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

// WriteShapePairs writes pairs as model-inspect's table: a line
// "# pairs with equal shapes: N", then aligned STUDENT, TEACHER and SHAPE
// (CxHxW) columns, one row per pair.
func WriteShapePairs(w io.Writer, pairs []ShapePair) error {
	fmt.Fprintf(w, "# pairs with equal shapes: %d\n", len(pairs))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STUDENT\tTEACHER\tSHAPE")
	for _, p := range pairs {
		fmt.Fprintf(tw, "%s\t%s\t%dx%dx%d\n", p.Student, p.Teacher, p.Shape[0], p.Shape[1], p.Shape[2])
	}
	return tw.Flush()
}

// CheckShapes checks, before any training, that every term of the recipe
// can pair its tensors at each input size of sizes (square, pixels): that
// the student and the teacher have the tensors it names, and that their
// shapes agree as its loss needs (equal [C, H, W], the channels taken from
// the teacher where a pair has an adapter; for fsp, equal FSP matrix sizes
// and each side's two maps of one spatial size). The error names the
// configuration key of the pair, both tensors with their shapes and the
// size, and how to list the pairs that fit (model-inspect).
func (r *Recipe) CheckShapes(student, teacher *yolo.Spec, sizes []int) error {
	for _, size := range sizes {
		si, err := student.Infer(size, size)
		if err != nil {
			return fmt.Errorf("student: %w", err)
		}
		ti, err := teacher.Infer(size, size)
		if err != nil {
			return fmt.Errorf("teacher: %w", err)
		}
		for _, term := range r.Terms {
			ss := make([]yolo.Shape, len(term.Student))
			ts := make([]yolo.Shape, len(term.Teacher))
			for i := range term.Student {
				if ss[i], err = refShape(student, si, term.Student[i]); err != nil {
					return &ShapeError{r.termKey(term, i), fmt.Sprintf("the student %v (model-inspect lists the names)", err)}
				}
				if ts[i], err = refShape(teacher, ti, term.Teacher[i]); err != nil {
					return &ShapeError{r.termKey(term, i), fmt.Sprintf("the teacher %v (model-inspect lists the names)", err)}
				}
				if term.Adapter[i] {
					ss[i].C = ts[i].C // the adapter maps the channels
				}
			}
			hint := fmt.Sprintf("at %d px (model-inspect -c STUDENT -t TEACHER --size %d lists the pairs of equal shape)", size, size)
			if _, ok := term.Loss.(*FSP); ok {
				for k := 0; k+1 < len(ss); k += 2 {
					for _, side := range []struct {
						role string
						sh   []yolo.Shape
						refs []Ref
					}{{"student", ss, term.Student}, {"teacher", ts, term.Teacher}} {
						a, b := side.sh[k], side.sh[k+1]
						if a.H != b.H || a.W != b.W {
							return &ShapeError{r.termKey(term, k), fmt.Sprintf("fsp pairs %d and %d: %s %s is %s but %s is %s: an FSP matrix needs two maps of one spatial size %s",
								k, k+1, side.role, side.refs[k], a, side.refs[k+1], b, hint)}
						}
					}
					if ss[k].C != ts[k].C || ss[k+1].C != ts[k+1].C {
						return &ShapeError{r.termKey(term, k), fmt.Sprintf("fsp pairs %d and %d give a %dx%d student FSP matrix and a %dx%d teacher one; they must be equal %s",
							k, k+1, ss[k].C, ss[k+1].C, ts[k].C, ts[k+1].C, hint)}
					}
				}
				continue
			}
			for i := range ss {
				if ss[i] == ts[i] {
					continue
				}
				what := "shapes"
				switch {
				case ss[i].H != ts[i].H || ss[i].W != ts[i].W:
					what = "spatial sizes"
				case !term.Adapter[i]:
					what = "channel counts (adapter: true maps them)"
				}
				return &ShapeError{r.termKey(term, i), fmt.Sprintf("student %s is %s but teacher %s is %s %s: their %s differ",
					term.Student[i], ss[i], term.Teacher[i], ts[i], hint, what)}
			}
		}
	}
	return nil
}

// ShapeError is CheckShapes' refusal: Key is the configuration key of the
// pair (distill.pairs.<i>, or "distill.loss" for losses over head outputs).
type ShapeError struct {
	Key, Msg string
}

func (e *ShapeError) Error() string { return e.Key + ": " + e.Msg }

// refShape is the [C, H, W] of ref in spec at the inference inf.
func refShape(spec *yolo.Spec, inf *yolo.Inference, ref Ref) (yolo.Shape, error) {
	name := ref.Name
	if ref.Head >= 0 {
		if ref.Head >= len(spec.Outputs) {
			return yolo.Shape{}, fmt.Errorf("has %d head outputs, not %d", len(spec.Outputs), ref.Head+1)
		}
		name = spec.Outputs[ref.Head]
	}
	li, ok := inf.Lookup(name)
	if !ok {
		return yolo.Shape{}, fmt.Errorf("has no tensor %q", name)
	}
	return li.Shape, nil
}

// termKey names the configuration key behind tensor i of a term: the
// distill.pairs entry, or distill.loss for losses over head outputs.
func (r *Recipe) termKey(term Term, i int) string {
	switch {
	case strings.HasPrefix(term.Name, "distill.pair."):
		return "distill.pairs." + strings.TrimPrefix(term.Name, "distill.pair.")
	case term.Student[i].Head < 0:
		return fmt.Sprintf("distill.pairs.%d", i)
	}
	return "distill.loss"
}

package distill

import (
	"fmt"
	"io"
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

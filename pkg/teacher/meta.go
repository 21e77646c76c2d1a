package teacher

import (
	"fmt"
	"slices"

	"yolodistill/pkg/config"
	"yolodistill/pkg/distill"
	"yolodistill/pkg/softtarget"
)

// Meta is the soft-target metadata of a teacher configuration: its model
// hash, classes, anchors and masks, with the given encoding and stored
// feature maps. teacher-dump writes it.
func Meta(teacher *config.Config, enc softtarget.Encoding, features []string) softtarget.Meta {
	m := softtarget.Meta{
		TeacherConfigHash: teacher.ModelHash(),
		Classes:           slices.Clone(teacher.Data.Classes),
		Anchors:           slices.Clone(teacher.Model.Anchors),
		Encoding:          enc,
		Features:          slices.Clone(features),
	}
	for _, mk := range teacher.Model.AnchorMasks {
		m.Masks = append(m.Masks, slices.Clone(mk))
	}
	return m
}

// Want is what a student with recipe rec requires of its teacher's soft
// targets (softtarget.Meta.CheckCompatible): the student's classes, the
// feature maps the recipe reads, the student's anchors and masks when the
// recipe reads head outputs, the teacher's model hash when its configuration
// is known (teacher not nil), and the augmentation settings the views' replay
// reads from the student's configuration.
func Want(student *config.Config, rec *distill.Recipe, teacher *config.Config) softtarget.Meta {
	want := softtarget.Meta{Classes: slices.Clone(student.Data.Classes), Features: rec.TeacherFeatures()}
	if rec.UsesHeads() {
		want.Anchors, want.Masks = student.Model.Anchors, student.Model.AnchorMasks
	}
	if teacher != nil {
		want.TeacherConfigHash = teacher.ModelHash()
	}
	return want
}

// CheckStudent checks that a student configuration fits the teacher
// configuration at teacherPath: the same class list and, when the student
// names its teacher (distill.teacher), the same model hash.
func CheckStudent(st, teacher *config.Config, teacherPath string) error {
	if !slices.Equal(st.Data.Classes, teacher.Data.Classes) {
		return fmt.Errorf("%s: classes %q, the teacher %s has %q", st.Path, st.Data.Classes, teacherPath, teacher.Data.Classes)
	}
	if tp := st.TeacherPath(); tp != "" {
		tc, err := config.Load(tp, nil)
		if err != nil {
			return fmt.Errorf("%s: distill.teacher: %w", st.Path, err)
		}
		if tc.ModelHash() != teacher.ModelHash() {
			return fmt.Errorf("%s: distill.teacher is %s (model hash %.12s), but -c %s has model hash %.12s: another teacher",
				st.Path, tp, tc.ModelHash(), teacherPath, teacher.ModelHash())
		}
	}
	return nil
}

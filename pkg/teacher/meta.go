package teacher

import (
	"fmt"
	"maps"
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

// DataSettings describes where cfg's training views come from, for
// soft-target metadata (softtarget.Meta.Data) and for messages about views
// whose pixels differ from the teacher's: data.format, data.root (root when
// not "", as teacher-dump's --dataset replaces it), data.train_split and,
// for the synthetic set, every data.synth setting. Values are text.
func DataSettings(cfg *config.Config, root string) map[string]string {
	d := &cfg.Data
	if root == "" {
		root = d.Root
	}
	m := map[string]string{"data.format": d.Format, "data.root": root, "data.train_split": d.TrainSplit}
	if d.Format == "synth" {
		s := d.Synth
		for k, v := range map[string]any{"num_images": s.NumImages, "image_size": s.ImageSize, "min_objects": s.MinObjects,
			"max_objects": s.MaxObjects, "min_object": s.MinObject, "max_object": s.MaxObject, "seed": s.Seed} {
			m["data.synth."+k] = fmt.Sprint(v)
		}
	}
	return m
}

// dataDiff lists the settings of DataSettings that differ between the
// dump's (nil: not recorded) and now's, as "KEY was A for the dump, is B
// here", sorted.
func dataDiff(dumped, now map[string]string) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(now)) {
		if v, ok := dumped[k]; ok && v != now[k] {
			out = append(out, fmt.Sprintf("%s was %q for the dump, is %q here", k, v, now[k]))
		}
	}
	return out
}

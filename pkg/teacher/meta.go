package teacher

import (
	"fmt"
	"maps"
	"slices"
	"strings"

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
		TeacherModel:      teacher.ModelText(),
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

// CheckStudent checks that a student configuration fits the teacher tc
// that teacher-dump runs (desc says where tc came from, e.g. "-c T -o K=V"):
// when the student names its teacher (distill.teacher), that teacher with
// the student's distill.teacher_overrides and then teacher-dump's own -o
// (overrides) applied must have tc's model hash; else the class lists must
// be equal. The error names both sides and the command-line fix.
func CheckStudent(st, tc *config.Config, desc string, overrides []string) error {
	if tp := st.TeacherPath(); tp != "" {
		want, err := st.LoadTeacher("", overrides)
		if err != nil {
			return fmt.Errorf("%s: distill.teacher: %w", st.Path, err)
		}
		if want.ModelHash() != tc.ModelHash() {
			diffs := config.DiffModelText(tc.ModelText(), want.ModelText())
			return fmt.Errorf("the student %s expects its teacher %s; model hash %.12s), but the teacher here is %s (model hash %.12s): %s. "+
				"If these weights are the student's teacher trained with other settings, give both tools the same teacher overrides: teacher-dump %s, and student-train %s; "+
				"otherwise dump the student's own teacher: teacher-dump -c %s --weights ITS_WEIGHTS",
				st.Path, teacherDesc(tp, st, overrides), want.ModelHash(), desc, tc.ModelHash(),
				diffText(diffs, "here", "for the student's teacher"), overrideArgs("-o", diffs), overrideArgs("--teacher-override", diffs), shellArg(tp))
		}
	}
	if !slices.Equal(st.Data.Classes, tc.Data.Classes) {
		diffs := config.DiffModelText(tc.ModelText(), st.ModelText())
		var cls []config.ModelDiff
		for _, d := range diffs {
			if d.Key == "data.classes" || d.Key == "model.num_classes" {
				cls = append(cls, d)
			}
		}
		return fmt.Errorf("the student %s has classes %q, the teacher here (%s) %q: the views come from the student's data, so the classes must be the same: "+
			"give the teacher the student's classes (teacher-dump %s) or use the student's own teacher",
			st.Path, st.Data.Classes, desc, tc.Data.Classes, overrideArgs("-o", flip(cls)))
	}
	return nil
}

// teacherDesc describes the teacher a student expects: the file, where it
// is named, and the overrides applied to it ("T (distill.teacher of S, with
// teacher overrides ...", the parenthesis left open for more).
func teacherDesc(path string, st *config.Config, extra []string) string {
	s := path + " (distill.teacher of " + st.Path
	if o := append(slices.Clone(st.Distill.TeacherOverrides), extra...); len(o) > 0 {
		s += ", with teacher overrides " + strings.Join(quoteArgs(o), " ")
	}
	return s
}

// diffText says how the keys differ, at most four of them: "model.num_classes
// is 2 here, 3 for the student's teacher; ...".
func diffText(diffs []config.ModelDiff, a, b string) string {
	if len(diffs) == 0 {
		return "the model texts differ in no key this program knows (written by another version?)"
	}
	var parts []string
	for i, d := range diffs {
		if i == 4 {
			parts = append(parts, fmt.Sprintf("and %d more keys", len(diffs)-4))
			break
		}
		parts = append(parts, fmt.Sprintf("%s is %s %s, %s %s", d.Key, orDefault(d.A), a, orDefault(d.B), b))
	}
	return strings.Join(parts, "; ")
}

func orDefault(v string) string {
	if v == "" {
		return "(default)"
	}
	return v
}

// overrideArgs are the flags that set the A side of diffs: `-o 'K=V' ...`.
func overrideArgs(flag string, diffs []config.ModelDiff) string {
	var out []string
	for _, d := range diffs {
		out = append(out, flag+" "+shellArg(d.Key+"="+d.A))
	}
	if len(out) == 0 {
		return flag + " KEY=VALUE"
	}
	return strings.Join(out, " ")
}

// flip swaps the sides of diffs.
func flip(diffs []config.ModelDiff) []config.ModelDiff {
	out := make([]config.ModelDiff, len(diffs))
	for i, d := range diffs {
		out[i] = config.ModelDiff{Key: d.Key, A: d.B, B: d.A}
	}
	return out
}

func quoteArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = shellArg(a)
	}
	return out
}

// shellArg quotes s for a POSIX shell when it needs it.
func shellArg(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-=/,:+@", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
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

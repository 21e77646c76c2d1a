package config

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestLoadTeacherAppliesOverridesInOrder(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("t.yml", "model: {backbone: resnet18, num_classes: 2}\ndata: {classes: [a, b]}\n")
	sp := write("s.yml", "model: {num_classes: 2}\ndata: {classes: [a, b]}\ndistill: {teacher: t.yml, teacher_overrides: [\"model.head_width=0.5\", \"model.obj_bias_init=-2\"]}\n")
	s, err := Load(sp, nil)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := s.LoadTeacher("", []string{"model.obj_bias_init=-3"})
	if err != nil {
		t.Fatal(err)
	}
	if tc.Model.Backbone != "resnet18" || tc.Model.HeadWidth != 0.5 || tc.Model.ObjBiasInit == nil || *tc.Model.ObjBiasInit != -3 {
		t.Errorf("teacher: backbone %s, head_width %v, obj_bias_init %v; want resnet18, 0.5, -3 (the extra override last)",
			tc.Model.Backbone, tc.Model.HeadWidth, tc.Model.ObjBiasInit)
	}
	if _, err := Load(sp, []string{`distill.teacher_overrides=["no equals sign"]`}); err == nil {
		t.Error("a teacher override without = was accepted")
	}
	plain, err := Load(filepath.Join(dir, "t.yml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := DiffModelText(tc.ModelText(), plain.ModelText())
	want := []ModelDiff{{Key: "model.head_width", A: "0.5", B: "1"}, {Key: "model.obj_bias_init", A: "-3", B: "null"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("DiffModelText = %+v, want %+v", got, want)
	}
	if d := DiffModelText(plain.ModelText(), plain.ModelText()); len(d) != 0 {
		t.Errorf("equal texts differ: %+v", d)
	}
	other := *plain
	other.Data.Classes = []string{"b", "a"}
	if d := DiffModelText(other.ModelText(), plain.ModelText()); len(d) != 1 || d[0].Key != "data.classes" || d[0].A != `["b", "a"]` {
		t.Errorf("classes diff = %+v", d)
	}
}

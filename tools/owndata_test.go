//go:build linux

package tools_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"yolodistill/pkg/cli/clitest"
	"yolodistill/pkg/config"
)

// TestOwnDataPath is the README's "Your own data" walk-through on a small
// synthetic VOC folder whose classes are in no preset: dataset init writes
// the two configurations, and the teacher, the dump, the distillation, the
// evaluation, the inference and the export run from them with no -o. Then
// the traps around that path: a finished run resumed, an existing
// configuration, a teacher dumped with an override the student was not told
// about, and a pipe whose writer fails.
func TestOwnDataPath(t *testing.T) {
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	preset, err := filepath.Abs("../pipelines/configs/bccd_student.yml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	start := time.Now()
	sh := func(line string, want int) string {
		t.Helper()
		code, stderr := clitest.Sh(t, binDir, "cd "+dir+" && "+line)
		if code != want {
			t.Fatalf("%s\nexit %d, want %d\n%s", line, code, want, stderr)
		}
		return stderr
	}
	has := func(stderr string, subs ...string) {
		t.Helper()
		for _, s := range subs {
			if !strings.Contains(stderr, s) {
				t.Errorf("stderr lacks %q:\n%s", s, stderr)
			}
		}
	}

	sh("dataset synth --out data --format voc --images 60 --size 64 --classes circle,square --names widget,gadget "+
		"--min-objects 1 --max-objects 3 --min-object 12 --max-object 28", 0)
	out := sh("dataset init data --preset "+preset+" --out cfg --size 64 --iters 40 --batch 4", 0)
	has(out, "training split: train (", "there is no trainval", "evaluation split: test (", "classes (2, label order): widget,gadget",
		"anchors: k-means on 1-IoU of", "wrote cfg/data_teacher.yml", "cfg/data_student.yml")
	tc, err := config.Load(filepath.Join(dir, "cfg/data_teacher.yml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := config.Load(filepath.Join(dir, "cfg/data_student.yml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"widget", "gadget"}; !slices.Equal(sc.Data.Classes, want) || !slices.Equal(tc.Data.Classes, want) || sc.Model.NumClasses != 2 {
		t.Errorf("classes: student %q (%d), teacher %q; want %q", sc.Data.Classes, sc.Model.NumClasses, tc.Data.Classes, want)
	}
	if sc.Data.TrainSplit != "train" || sc.Data.EvalSplit != "test" || sc.Train.MaxIters != 40 || sc.Eval.Size != 64 {
		t.Errorf("student: splits %q/%q, max_iters %d, eval.size %d", sc.Data.TrainSplit, sc.Data.EvalSplit, sc.Train.MaxIters, sc.Eval.Size)
	}
	if !slices.Equal(sc.Model.Anchors, tc.Model.Anchors) || slices.Equal(sc.Model.Anchors, config.Defaults().Model.Anchors) {
		t.Errorf("anchors: student %v, teacher %v: want the same fitted anchors", sc.Model.Anchors, tc.Model.Anchors)
	}
	if sc.TeacherPath() != filepath.Join(dir, "cfg/data_teacher.yml") || sc.Model.Backbone != "mobilenet_v1" || tc.Model.Backbone != "resnet18" {
		t.Errorf("student's teacher %s, backbones %s/%s", sc.TeacherPath(), sc.Model.Backbone, tc.Model.Backbone)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "cfg/data_student.yml")); !strings.Contains(string(b), "_base_:") {
		t.Errorf("the student configuration inherits nothing:\n%s", b)
	}
	out = sh("dataset init data --preset "+preset+" --out cfg", 1)
	has(out, "cfg/data_teacher.yml exists: give --force")

	// The path, with no -o.
	sh("detect-train -c cfg/data_teacher.yml --out runs/teacher", 0)
	out = sh("teacher-dump --weights runs/teacher/model_final.ckpt --student-config cfg/data_student.yml --out - "+
		"| student-train -c cfg/data_student.yml --soft-targets - --out runs/student", 0)
	// 48 training images, batches of 4: 12 per epoch; 40 iterations need 4
	// epochs, plus one.
	has(out, "--views 5: the student's train.max_iters 40 batches over 12 batches of 4 per epoch",
		"240 views (5 epochs x 12 batches of 4)", "wrote 240 views to stdout", "done: 40 iterations")
	var evalOut struct {
		Metric string  `json:"metric"`
		Map    float64 `json:"map"`
	}
	sh("detect-eval --weights runs/student/model_final.ckpt --json runs/eval.json", 0)
	b, err := os.ReadFile(filepath.Join(dir, "runs/eval.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &evalOut); err != nil || evalOut.Metric != "voc" {
		t.Errorf("eval.json %s: %v", b, err)
	}
	sh("detect-infer --weights runs/student/model_final.ckpt --infer-dir data/JPEGImages --output-dir runs/infer", 0)
	if _, err := os.Stat(filepath.Join(dir, "runs/infer/detections.json")); err != nil {
		t.Error(err)
	}
	sh("detect-export --weights runs/student/model_final.ckpt --out runs/student.onnx", 0)
	t.Logf("own-data path: %.1f s", time.Since(start).Seconds())

	// A finished run resumed: said so, nothing touched.
	final := filepath.Join(dir, "runs/teacher/model_final.ckpt")
	before, _ := os.Stat(final)
	out = sh("detect-train -r runs/teacher/model_final.ckpt", 0)
	has(out, "the run is finished, nothing to resume", "-o train.max_iters=")
	if after, _ := os.Stat(final); !after.ModTime().Equal(before.ModTime()) {
		t.Error("resuming a finished run rewrote model_final.ckpt")
	}
	if _, err := os.Stat(filepath.Join(dir, "output")); err == nil {
		t.Error("-r without --out wrote into output/ instead of the checkpoint's folder")
	}

	// A teacher dumped with an override the student was not told about: the
	// mismatch names both sides, the key and the flag that fixes it.
	sh("teacher-dump --weights runs/teacher/model_final.ckpt -o model.obj_bias_init=-3 --student-config cfg/data_student.yml --out st.arrow", 0)
	out = sh("student-train -c cfg/data_student.yml --soft-targets st.arrow --out runs/s2", 1)
	has(out, "soft targets st.arrow were dumped from a teacher with model hash", "cfg/data_teacher.yml (distill.teacher of cfg/data_student.yml",
		"model.obj_bias_init is -3 in the dump, -4.59512 here", "--teacher-override model.obj_bias_init=-3")
	out = sh("student-train -c cfg/data_student.yml --soft-targets st.arrow --teacher-override model.obj_bias_init=-3 -o train.max_iters=2 --out runs/s2", 0)
	has(out, "done: 2 iterations")
	if b, _ := os.ReadFile(filepath.Join(dir, "runs/s2/config.yml")); !strings.Contains(string(b), `teacher_overrides: ["model.obj_bias_init=-3"]`) {
		t.Errorf("the run's config.yml does not record the teacher override:\n%s", b)
	}
	// The other way round: the teacher run differs from the one the student
	// names, and teacher-dump says how to tell both tools.
	out = sh("teacher-dump --weights runs/teacher/model_final.ckpt --student-config cfg/data_student.yml "+
		"--student-override 'distill.teacher_overrides=[\"model.obj_bias_init=-2\"]' --out st2.arrow", 1)
	has(out, "the teacher here is the configuration stored in runs/teacher/model_final.ckpt", "with teacher overrides model.obj_bias_init=-2",
		"model.obj_bias_init is -4.59512 here, -2 for the student's teacher", "teacher-dump -o model.obj_bias_init=-4.59512", "student-train --teacher-override model.obj_bias_init=-4.59512")
	if _, err := os.Stat(filepath.Join(dir, "st2.arrow")); err == nil {
		t.Error("a refused dump left its output file")
	}

	// A failing writer: the reading end says so in one line.
	out = sh("teacher-dump --weights runs/nothing.ckpt --student-config cfg/data_student.yml --out - "+
		"| student-train -c cfg/data_student.yml --soft-targets - --out runs/s3", 1)
	re := regexp.MustCompile(`(?m)^student-train: .*$`)
	if lines := re.FindAllString(out, -1); len(lines) != 1 || !strings.Contains(lines[0], "no soft targets arrived on stdin") {
		t.Errorf("student-train after a failed teacher-dump: %q, want one line saying the writer failed\n%s", lines, out)
	}
}

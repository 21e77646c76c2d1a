package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"yolodistill/pkg/cli/clitest"
	"yolodistill/pkg/config"
	"yolodistill/pkg/detector"
	"yolodistill/pkg/train"
	"yolodistill/pkg/weights"
	"yolodistill/pkg/weights/weightstest"
)

// The original's distillation command, with our flags:
//
//	student-train -c pipelines/configs/yolov3_mobilenet_v1_voc.yml \
//	    -t pipelines/configs/yolov3_r34_voc.yml --teacher-weights .../yolov3_r34_voc.tar
//
// The teacher is a PaddleDetection weights tar (one LoDTensor file per
// variable, PaddleDetection's names, with optimizer state) served from
// 127.0.0.1. The presets are shrunk to test size: the teacher by a
// configuration inheriting yolov3_r34_voc.yml, the student by -o.
func TestOriginalCommandPaddleTeacherURL(t *testing.T) {
	dir := t.TempDir()
	presets, err := filepath.Abs("../../pipelines/configs")
	if err != nil {
		t.Fatal(err)
	}
	base, err := filepath.Rel(dir, filepath.Join(presets, "yolov3_r34_voc.yml"))
	if err != nil {
		t.Fatal(err)
	}
	data := `data:
  format: synth
  root: ""
  train_split: train
  eval_split: ""
  classes: [circle, ring]
  augment:
    mixup: {enabled: false}
    expand: {enabled: false}
    crop: false
    multi_scale: [64]
  synth: {num_images: 8, image_size: 64, min_objects: 1, max_objects: 2, seed: 3}
`
	teacherYML := filepath.Join(dir, "yolov3_r34_voc_tiny.yml")
	os.WriteFile(teacherYML, []byte("_base_: "+base+"\nmodel: {backbone_width: 0.0625, head_width: 0.0625, num_classes: 2}\n"+data), 0o644)
	tcfg, err := config.Load(teacherYML, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tcfg.Model.Layout != "paddle" || tcfg.Model.Backbone != "resnet34" {
		t.Fatalf("the preset teacher is %s layout %q", tcfg.Model.Backbone, tcfg.Model.Layout)
	}
	// The teacher's weights as PaddleDetection releases them.
	td, err := detector.New(tcfg)
	if err != nil {
		t.Fatal(err)
	}
	names := weights.Names(td.Spec, weights.SchemePaddle)
	var vars []weightstest.Var
	for _, tt := range td.Tensors() {
		vars = append(vars, weightstest.Var{Name: names[tt.Name], Shape: tt.Shape, Data: tt.Dst})
	}
	vars = append(vars, weightstest.Var{Name: "conv1_weights_velocity_0", Shape: []int{1}, Data: []float32{0}},
		weightstest.Var{Name: "learning_rate_0", Shape: []int{1}, Data: []float32{1e-3}})
	tarPath := filepath.Join(dir, "yolov3_r34_voc.tar")
	weightstest.WritePaddleTar(t, tarPath, "yolov3_r34_voc", vars)
	body, _ := os.ReadFile(tarPath)
	gets := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gets++
		if r.URL.Path != "/object_detection/yolov3_r34_voc.tar" {
			http.NotFound(w, r)
			return
		}
		w.Write(body)
	}))
	defer srv.Close()

	student := []string{"-c", filepath.Join(presets, "yolov3_mobilenet_v1_voc.yml")}
	for _, o := range []string{"model.backbone_width=0.125", "model.head_width=0.0625", "model.num_classes=2",
		"data.format=synth", `data.root=""`, "data.train_split=train", `data.eval_split=""`, "data.classes=[circle, ring]",
		"data.augment.mixup.enabled=false", "data.augment.expand.enabled=false", "data.augment.crop=false", "data.augment.multi_scale=[64]",
		"data.synth.num_images=8", "data.synth.image_size=64", "train.max_iters=2", "train.batch_size=2", "train.warmup_steps=0",
		"train.milestones=[]", "train.log_iter=1", "eval.size=64"} {
		student = append(student, "-o", o)
	}
	cache := filepath.Join(dir, "cache")
	for i := 0; i < 2; i++ {
		out := filepath.Join(dir, "run", string(rune('a'+i)))
		args := append(append([]string{}, student...), "-t", teacherYML, "--teacher-weights", srv.URL+"/object_detection/yolov3_r34_voc.tar",
			"--cache-dir", cache, "--out", out)
		r := clitest.Run(t, run, args...)
		if r.Code != 0 {
			t.Fatalf("run %d: exit %d\n%s", i, r.Code, r.Stderr)
		}
		if _, err := os.Stat(filepath.Join(out, train.FinalFile)); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(r.Stderr, "online") {
			t.Errorf("stderr does not say the teacher runs online:\n%s", r.Stderr)
		}
	}
	if gets != 1 {
		t.Errorf("%d downloads, want 1 (cached)", gets)
	}
	// The same tar given to a torch-layout teacher is refused with the reason.
	torchT := filepath.Join(dir, "torch_teacher.yml")
	os.WriteFile(torchT, []byte("_base_: yolov3_r34_voc_tiny.yml\nmodel: {layout: torch}\n"), 0o644)
	r := clitest.Run(t, run, append(append([]string{}, student...), "-t", torchT, "--teacher-weights", tarPath, "--out", filepath.Join(dir, "bad"))...)
	if r.Code != 1 || !strings.Contains(r.Stderr, "yolov3_r34_voc.tar") || !strings.Contains(r.Stderr, "model.layout: paddle") || !strings.Contains(r.Stderr, "res2a_branch1_weights") {
		t.Errorf("torch-layout teacher: exit %d\n%s", r.Code, r.Stderr)
	}
}

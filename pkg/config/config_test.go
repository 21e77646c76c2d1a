package config

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"yolodistill/pkg/anchor"
)

const presetDir = "../../pipelines/configs"
const fixtureDir = "../../testdata/config"

func presets(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(presetDir, "*.yml"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"bccd_student.yml", "bccd_teacher.yml", "synth_student.yml", "synth_teacher.yml",
		"yolov3_mobilenet_v1.yml", "yolov3_mobilenet_v1_voc.yml", "yolov3_r34.yml", "yolov3_r34_voc.yml"}
	var got []string
	for _, f := range files {
		got = append(got, filepath.Base(f))
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("preset %s missing from %s", w, presetDir)
		}
	}
	return files
}

func mustLoad(t *testing.T, path string, overrides ...string) *Config {
	t.Helper()
	c, err := Load(path, overrides)
	if err != nil {
		t.Fatalf("Load(%s, %v): %v", path, overrides, err)
	}
	return c
}

func TestPresetsLoadAndValidate(t *testing.T) {
	for _, f := range presets(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			c := mustLoad(t, f)
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			if len(c.Data.Classes) != c.Model.NumClasses {
				t.Errorf("%d classes, num_classes %d", len(c.Data.Classes), c.Model.NumClasses)
			}
			if c.Distill.Teacher != "" {
				tp := c.TeacherPath()
				tc := mustLoad(t, tp)
				if tc.Model.NumClasses != c.Model.NumClasses || !slices.Equal(tc.Data.Classes, c.Data.Classes) {
					t.Errorf("teacher %s has other classes", tp)
				}
				if !reflect.DeepEqual(tc.Model.Anchors, c.Model.Anchors) {
					t.Errorf("teacher %s has other anchors", tp)
				}
			}
		})
	}
}

// PaddleDetection release/0.3 values, checked key by key.
func TestPaddlePresetValues(t *testing.T) {
	type check struct {
		key  string
		want any
	}
	common := []check{
		{"model.architecture", "YOLOv3"}, {"train.base_lr", 0.001}, {"train.momentum", 0.9},
		{"train.weight_decay", 0.0005}, {"train.warmup_start_factor", 0.0}, {"train.gamma", 0.1},
		{"train.batch_size", 64}, {"loss.ignore_thresh", 0.7},
		{"eval.nms.score_threshold", 0.01}, {"eval.nms.nms_top_k", 1000}, {"eval.nms.keep_top_k", 100},
		{"eval.nms.nms_threshold", 0.45}, {"eval.nms.normalized", false}, {"eval.size", 608},
		{"model.anchors", anchor.Defaults()}, {"model.anchor_masks", anchor.DefaultMasks()},
		{"data.augment.multi_scale", []int{320, 352, 384, 416, 448, 480, 512, 544, 576, 608}},
		{"data.augment.mixup.enabled", true},
	}
	voc := []check{{"train.max_iters", 70000}, {"train.milestones", []int{55000, 62000}}, {"train.warmup_steps", 1000},
		{"train.snapshot_iter", 2000}, {"model.num_classes", 20}, {"eval.metric", "voc"}, {"eval.map_type", "11point"},
		{"loss.label_smooth", false}}
	coco := []check{{"train.max_iters", 500000}, {"train.milestones", []int{400000, 450000}}, {"train.warmup_steps", 4000},
		{"train.snapshot_iter", 10000}, {"model.num_classes", 80}, {"eval.metric", "coco"}, {"loss.label_smooth", true}}
	cases := []struct {
		file   string
		checks [][]check
		extra  []check
	}{
		{"yolov3_mobilenet_v1_voc.yml", [][]check{common, voc}, []check{{"model.backbone", "mobilenet_v1"}, {"distill.loss", "l2"}, {"distill.weight", 100.0}, {"distill.teacher", "yolov3_r34_voc.yml"}}},
		{"yolov3_r34_voc.yml", [][]check{common, voc}, []check{{"model.backbone", "resnet34"}, {"distill.loss", "none"}}},
		{"yolov3_mobilenet_v1.yml", [][]check{common, coco}, []check{{"model.backbone", "mobilenet_v1"}, {"distill.loss", "fine_grained"}, {"distill.weight", 1000.0}, {"distill.teacher", "yolov3_r34.yml"}}},
		{"yolov3_r34.yml", [][]check{common, coco}, []check{{"model.backbone", "resnet34"}}},
		{"bccd_teacher.yml", nil, []check{{"model.backbone", "resnet18"}, {"model.backbone_width", 0.5}, {"model.head_width", 0.5},
			{"data.classes", []string{"RBC", "WBC", "Platelets"}}, {"train.base_lr", 0.002}, {"train.max_iters", 700},
			{"data.augment.multi_scale", []int{320, 352, 384, 416, 448, 480, 512, 544, 576, 608}}, {"data.augment.flip", true}, {"data.augment.mixup.enabled", false},
			{"data.augment.crop", false}, {"data.augment.expand.enabled", false}, {"data.augment.color_distort", false}, {"eval.size", 320}}},
		{"bccd_student.yml", nil, []check{{"model.backbone", "mobilenet_v1"}, {"model.backbone_width", 0.25}, {"model.head_width", 0.25},
			{"train.max_iters", 600}, {"train.milestones", []int{480, 540}}, {"train.base_lr", 0.002}, {"distill.teacher", "bccd_teacher.yml"},
			{"data.augment.multi_scale", []int{320, 352, 384, 416, 448, 480, 512, 544, 576, 608}}, {"eval.size", 320}}},
		{"synth_teacher.yml", nil, []check{{"model.backbone", "resnet18"}, {"model.backbone_width", 0.5}, {"data.format", "synth"}}},
		{"synth_student.yml", nil, []check{{"model.backbone", "mobilenet_v1"}, {"model.head_width", 0.25}, {"data.format", "synth"}}},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			c := mustLoad(t, filepath.Join(presetDir, tc.file))
			all := slices.Concat(append(tc.checks, tc.extra)...)
			for _, ch := range all {
				got, err := c.Get(ch.key)
				if err != nil {
					t.Errorf("%s: %v", ch.key, err)
					continue
				}
				if !reflect.DeepEqual(got, ch.want) {
					t.Errorf("%s = %#v, want %#v", ch.key, got, ch.want)
				}
			}
		})
	}
	// The BCCD teacher and student carry the same anchors (their fit against
	// the Python reference, testdata/config/bccd_anchors_ms.json, is
	// pkg/dataset's TestBCCDPresetAnchors, which needs the dataset).
	teacher := mustLoad(t, filepath.Join(presetDir, "bccd_teacher.yml"))
	for _, f := range []string{"bccd_teacher.yml", "bccd_student.yml"} {
		c := mustLoad(t, filepath.Join(presetDir, f))
		if !reflect.DeepEqual(c.Model.Anchors, teacher.Model.Anchors) || len(c.Model.Anchors) != 9 {
			t.Errorf("%s anchors %v, the teacher's %v", f, c.Model.Anchors, teacher.Model.Anchors)
		}
		if c.Model.ObjBiasInit == nil || math.Abs(*c.Model.ObjBiasInit-Logit(0.01)) > 1e-5 {
			t.Errorf("%s obj_bias_init %v, want logit(0.01) = %v", f, c.Model.ObjBiasInit, Logit(0.01))
		}
	}
}

func TestMissingFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "nope.yml")
	_, err := Load(p, nil)
	if err == nil {
		t.Fatal("no error")
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("error %v does not wrap fs.ErrNotExist", err)
	}
	if !strings.HasPrefix(err.Error(), p+": cannot read config") {
		t.Errorf("error %q does not name the file", err)
	}
}

func TestFileErrors(t *testing.T) {
	cases := []struct {
		name string
		file string // in testdata/config, or inline source when src != ""
		src  string
		want string // exact error text; FILE stands for the file name
	}{
		{"malformed flow list", "bad_syntax.yml", "", "FILE:4:1: malformed YAML: ',' or ']' must be specified"},
		{"unknown key", "unknown_key.yml", "", "FILE:5:3: train.base_rl: unknown key; did you mean train.base_lr?"},
		{"wrong type int", "wrong_type.yml", "", "FILE:2:14: train.max_iters: want an integer, got number 1.5"},
		{"unknown section", "", "trian:\n  max_iters: 3\n", "FILE:1:1: trian: unknown key; did you mean train?"},
		{"bool as int", "", "loss:\n  label_smooth: 1\n", "FILE:2:17: loss.label_smooth: want a bool (true or false), got integer 1"},
		{"anchor length", "", "model:\n  anchors: [[10, 13, 5]]\n", "FILE:2:13: model.anchors.0: want a list of 2 numbers, got a list of 3"},
		{"scalar for section", "", "eval: 5\n", "FILE:1:7: eval: want a mapping (batch_size, draw_threshold, map_type, metric, nms, size), got integer 5"},
		{"list for scalar", "", "train:\n  base_lr: [1]\n", "FILE:2:12: train.base_lr: want a number, got a list"},
		{"duplicate key", "", "train:\n  max_iters: 3\n  max_iters: 4\n", "FILE:3:3: malformed YAML: mapping key \"max_iters\" already defined at [2:3]"},
		{"not a mapping", "", "- 1\n- 2\n", "FILE:1:1: want a mapping, got a list"},
		{"pair unknown key", "", "distill:\n  pairs:\n  - {student: a, teacher: b, knd: l1}\n", "FILE:3:30: distill.pairs.0.knd: unknown key; did you mean distill.pairs.0.kind?"},
		{"tab indentation", "", "train:\n\tmax_iters: 3\n", "FILE:2:1: malformed YAML: found character '\t' that cannot start any token"},
		{"inheritance cycle", "cycle_a.yml", "", "cycle_b.yml:1:9: _base_: inheritance cycle through"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(fixtureDir, tc.file)
			if tc.src != "" {
				file = filepath.Join(t.TempDir(), "c.yml")
				if err := os.WriteFile(file, []byte(tc.src), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, err := Load(file, nil)
			if err == nil {
				t.Fatal("no error")
			}
			want := strings.ReplaceAll(tc.want, "FILE", file)
			if strings.HasSuffix(want, "through") { // cycle: path of the repeated file follows
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error\n  %q\ndoes not contain\n  %q", err, want)
				}
				return
			}
			if err.Error() != want {
				t.Errorf("error\n  %q\nwant\n  %q", err, want)
			}
			var ce *Error
			if !errors.As(err, &ce) || ce.Line == 0 {
				t.Errorf("error %T has no line: %#v", err, ce)
			}
		})
	}
}

func TestInheritance(t *testing.T) {
	c := mustLoad(t, filepath.Join(fixtureDir, "child.yml"))
	checks := []struct {
		key  string
		want any
	}{
		{"model.backbone", "resnet18"}, // from base
		{"model.backbone_width", 0.5},  // from base
		{"model.head_width", 0.25},     // from child
		{"train.base_lr", 0.002},       // child overrides base
		{"train.max_iters", 100},       // from base
		{"train.momentum", 0.9},        // default
		{"data.classes", []string{"a", "b", "c"}},
	}
	for _, ch := range checks {
		got, err := c.Get(ch.key)
		if err != nil || !reflect.DeepEqual(got, ch.want) {
			t.Errorf("%s = %#v (%v), want %#v", ch.key, got, err, ch.want)
		}
	}
	m := mustLoad(t, filepath.Join(fixtureDir, "multi_base.yml"))
	if m.Train.MaxIters != 7 || m.Train.BaseLR != 0.002 || m.Model.HeadWidth != 0.25 || m.Model.Backbone != "resnet18" {
		t.Errorf("_BASE_ list: %+v %+v", m.Train, m.Model)
	}
	// A base that is not a path.
	p := filepath.Join(t.TempDir(), "c.yml")
	os.WriteFile(p, []byte("_base_: [3]\n"), 0o644)
	if _, err := Load(p, nil); err == nil || err.Error() != p+":1:10: _base_: want a file path or a list of them, got integer 3" {
		t.Errorf("bad _base_: %v", err)
	}
	// A missing base names the base file.
	os.WriteFile(p, []byte("_base_: nope.yml\n"), 0o644)
	if _, err := Load(p, nil); err == nil || !strings.HasPrefix(err.Error(), filepath.Join(filepath.Dir(p), "nope.yml")+": cannot read config") {
		t.Errorf("missing _base_: %v", err)
	}
}

func TestOverrides(t *testing.T) {
	base := filepath.Join(presetDir, "yolov3_mobilenet_v1_voc.yml")
	cases := []struct {
		name      string
		overrides []string
		key       string
		want      any
	}{
		{"float", []string{"train.base_lr=0.01"}, "train.base_lr", 0.01},
		{"int into float", []string{"train.base_lr=1"}, "train.base_lr", 1.0},
		{"integral float into int", []string{"train.max_iters=5e3"}, "train.max_iters", 5000},
		{"bool", []string{"loss.label_smooth=true"}, "loss.label_smooth", true},
		{"string", []string{"model.backbone=resnet34"}, "model.backbone", "resnet34"},
		{"string with colon", []string{"data.root=/a/b:c"}, "data.root", "/a/b:c"},
		{"empty string", []string{"distill.teacher="}, "distill.teacher", ""},
		{"nested list", []string{"model.anchors=[[10,13],[16,30],[33,23]]", "model.anchor_masks=[[2],[1],[0]]"}, "model.anchors", []anchor.Anchor{{10, 13}, {16, 30}, {33, 23}}},
		{"nested list masks", []string{"model.anchor_masks=[[0, 1], [2, 3], [4]]"}, "model.anchor_masks", [][]int{{0, 1}, {2, 3}, {4}}},
		{"list element", []string{"model.anchors.8=[300, 300]"}, "model.anchors.8", anchor.Anchor{300, 300}},
		{"list element scalar", []string{"model.anchors.0.1=14"}, "model.anchors.0", anchor.Anchor{10, 14}},
		{"mask element", []string{"model.anchor_masks.2=[0, 1]"}, "model.anchor_masks", [][]int{{6, 7, 8}, {3, 4, 5}, {0, 1}}},
		{"int list", []string{"train.milestones=[100, 200, 300]"}, "train.milestones", []int{100, 200, 300}},
		{"empty list", []string{"train.milestones=[]"}, "train.milestones", []int{}},
		{"section merge", []string{"eval.nms={score_threshold: 0.05, keep_top_k: 50}"}, "eval.nms", NMSConfig{ScoreThreshold: 0.05, NMSTopK: 1000, KeepTopK: 50, NMSThreshold: 0.45, BackgroundLabel: -1}},
		{"pointer set", []string{"model.obj_bias_init=-4.59512"}, "model.obj_bias_init", -4.59512},
		{"pointer null", []string{"model.obj_bias_init=null"}, "model.obj_bias_init", (*float64)(nil)},
		{"list of mappings with defaults", []string{"distill.pairs=[{student: head.0.out, teacher: head.0.out}, {student: a, teacher: b, kind: cosine, weight: 2}]", "distill.loss=pairs"},
			"distill.pairs", []PairConfig{{Student: "head.0.out", Teacher: "head.0.out", Kind: "l2", Weight: 1}, {Student: "a", Teacher: "b", Kind: "cosine", Weight: 2}}},
		{"pair field", []string{"distill.pairs=[{student: a, teacher: b}]", "distill.pairs.0.kind=l1", "distill.pairs.0.adapter=true"}, "distill.pairs.0", PairConfig{Student: "a", Teacher: "b", Kind: "l1", Adapter: true, Weight: 1}},
		{"later wins", []string{"train.seed=3", "train.seed=4"}, "train.seed", int64(4)},
		{"spaces around key", []string{" train.seed =7"}, "train.seed", int64(7)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := mustLoad(t, base, tc.overrides...)
			got, err := c.Get(tc.key)
			if err != nil {
				t.Fatal(err)
			}
			if p, ok := got.(*float64); ok && p != nil {
				got = *p
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%s = %#v, want %#v", tc.key, got, tc.want)
			}
		})
	}
}

func TestOverrideErrors(t *testing.T) {
	base := filepath.Join(presetDir, "yolov3_mobilenet_v1_voc.yml")
	cases := []struct {
		name     string
		override string
		want     string // exact error text
	}{
		{"unknown key", "train.base_rl=0.1", "-o train.base_rl=0.1: train.base_rl: unknown key; did you mean train.base_lr?"},
		{"missing section", "base_lr=0.1", "-o base_lr=0.1: base_lr: unknown key; did you mean train.base_lr?"},
		{"misspelt section", "modle.backbone=resnet34", "-o modle.backbone=resnet34: modle.backbone: unknown key; did you mean model.backbone?"},
		{"nested unknown", "eval.nms.nms_thresh=0.5", "-o eval.nms.nms_thresh=0.5: eval.nms.nms_thresh: unknown key; did you mean eval.nms.nms_threshold?"},
		{"no equals", "train.base_lr", "-o train.base_lr: want key=value"},
		{"int gets float", "train.max_iters=1.5", "-o train.max_iters=1.5: train.max_iters: want an integer, got number 1.5"},
		{"int gets string", "train.max_iters=abc", "-o train.max_iters=abc: train.max_iters: want an integer, got string \"abc\""},
		{"bool gets int", "loss.label_smooth=1", "-o loss.label_smooth=1: loss.label_smooth: want a bool (true or false), got integer 1"},
		{"float gets string", "train.base_lr=fast", "-o train.base_lr=fast: train.base_lr: want a number, got string \"fast\""},
		{"float gets inf", "train.base_lr=.inf", "-o train.base_lr=.inf: train.base_lr: want a finite number, got number .inf"},
		{"list gets scalar", "model.anchors=5", "-o model.anchors=5: model.anchors: want a list of lists of 2 numbers, got integer 5"},
		{"anchor wrong length", "model.anchors=[[10,13,1]]", "-o model.anchors=[[10,13,1]]: model.anchors.0: want a list of 2 numbers, got a list of 3"},
		{"nested wrong type", "model.anchor_masks=[[0,1],[x]]", "-o model.anchor_masks=[[0,1],[x]]: model.anchor_masks.1.0: want an integer, got string \"x\""},
		{"index out of range", "model.anchors.9=[1,1]", "-o model.anchors.9=[1,1]: model.anchors.9: index 9 out of range: model.anchors has 9 items"},
		{"index into empty list", "distill.pairs.0.kind=l1", "-o distill.pairs.0.kind=l1: distill.pairs.0.kind: index 0 out of range: distill.pairs has 0 items"},
		{"key below scalar", "train.base_lr.x=1", "-o train.base_lr.x=1: train.base_lr.x: train.base_lr is a number and has no key \"x\""},
		{"empty value for int", "train.max_iters=", "-o train.max_iters=: train.max_iters: empty value; want an integer"},
		{"malformed value", "model.anchors=[[1,2]", "-o model.anchors=[[1,2]: model.anchors: malformed YAML: sequence end token ']' not found"},
		{"int overflow", "eval.size=99999999999999999999", "-o eval.size=99999999999999999999: eval.size: want an integer, got number 99999999999999999999"},
		// Validation after the merge blames the override that set the key.
		{"validation blames override", "train.base_lr=-1", "-o train.base_lr=-1: train.base_lr: must be > 0, got -1"},
		{"validation size", "eval.size=500", "-o eval.size=500: eval.size: input size 500 must be a positive multiple of 32"},
		{"validation enum", "model.backbone=vgg16", "-o model.backbone=vgg16: model.backbone: \"vgg16\" is not one of mobilenet_v1, resnet34, resnet18"},
		{"validation mask range", "model.anchors=[[10,13],[16,30]]", base + ": model.anchor_masks.0.0: anchor index 6 out of range [0, 2): there are 2 anchors"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(base, []string{tc.override})
			if err == nil {
				t.Fatal("no error")
			}
			first := strings.Split(err.Error(), "\n")[0]
			if first != tc.want {
				t.Errorf("error\n  %q\nwant\n  %q", first, tc.want)
			}
		})
	}
}

func TestValidation(t *testing.T) {
	base := filepath.Join(presetDir, "synth_student.yml")
	cases := []struct {
		name      string
		overrides []string
		want      []string // each must appear as a line of the error
	}{
		{"widths", []string{"model.backbone_width=0", "model.head_width=-1"}, []string{
			"-o model.backbone_width=0: model.backbone_width: must be > 0, got 0",
			"-o model.head_width=-1: model.head_width: must be > 0, got -1"}},
		{"classes count", []string{"model.num_classes=4"}, []string{"-o model.num_classes=4: data.classes: 8 classes listed but model.num_classes is 4"}},
		{"duplicate class", []string{"data.classes=[a, b, a]", "model.num_classes=3"}, []string{"-o data.classes=[a, b, a]: data.classes.2: class \"a\" repeats data.classes.0"}},
		{"synth split", []string{"data.eval_split=eval"}, []string{"-o data.eval_split=eval: data.eval_split: \"eval\" is not a synthetic split (train, val, test)"}},
		{"synth objects", []string{"data.synth.max_objects=2"}, []string{"-o data.synth.max_objects=2: data.synth.max_objects: 2 is below data.synth.min_objects 3"}},
		{"synth image size", []string{"data.synth.image_size=32"}, []string{"-o data.synth.image_size=32: data.synth.image_size: must be in 64..8192, got 32"}},
		{"layout", []string{"model.layout=caffe"}, []string{"-o model.layout=caffe: model.layout: \"caffe\" is not one of torch, paddle"}},
		{"negative seed", []string{"train.seed=-1"}, []string{"-o train.seed=-1: train.seed: must be >= 0, got -1"}},
		{"masks count", []string{"model.anchor_masks=[[0],[1]]"}, []string{"-o model.anchor_masks=[[0],[1]]: model.anchor_masks: want 3 masks (strides 32, 16, 8), got 2"}},
		{"mask repeat", []string{"model.anchor_masks=[[0,0],[1],[2]]"}, []string{"-o model.anchor_masks=[[0,0],[1],[2]]: model.anchor_masks.0.1: anchor index 0 repeated in the mask"}},
		{"mask shared", []string{"model.anchor_masks=[[0,1],[1],[2]]"}, []string{"-o model.anchor_masks=[[0,1],[1],[2]]: model.anchor_masks.1.0: anchor index 1 is also in mask 0"}},
		{"negative anchor", []string{"model.anchors.3=[0, 5]"}, []string{"-o model.anchors.3=[0, 5]: model.anchors.3: anchor [0, 5] must have positive width and height"}},
		{"multi scale", []string{"data.augment.multi_scale=[320, 330]"}, []string{"-o data.augment.multi_scale=[320, 330]: data.augment.multi_scale.1: input size 330 must be a positive multiple of 32"}},
		{"milestones", []string{"train.milestones=[300, 200]"}, []string{"-o train.milestones=[300, 200]: train.milestones.1: milestones must increase: 200 after 300"}},
		{"momentum", []string{"train.momentum=1"}, []string{"-o train.momentum=1: train.momentum: must be in [0, 1), got 1"}},
		{"zero batch", []string{"train.batch_size=0"}, []string{"-o train.batch_size=0: train.batch_size: must be >= 1, got 0"}},
		{"pairs without pairs", []string{"distill.loss=pairs"}, []string{"-o distill.loss=pairs: distill.pairs: distill.loss is pairs but no pairs are listed"}},
		{"weights of a single loss", []string{"distill.weights=[1, 2]"}, []string{"-o distill.weights=[1, 2]: distill.weights: only for a combined loss such as l2+fine_grained; distill.loss fine_grained takes distill.weight"}},
		{"combined weights count", []string{"distill.loss=l2+fine_grained", "distill.weights=[100]"}, []string{"-o distill.loss=l2+fine_grained: distill.weights: 1 weights for the 2 parts of distill.loss l2+fine_grained (one per part, in order, or none for the kinds' defaults)"}},
		{"combined unknown part", []string{"distill.loss=l2+fine"}, []string{"-o distill.loss=l2+fine: distill.loss: \"l2+fine\": \"fine\" is not one of l2, fine_grained, fsp, soft_label, pairs"}},
		{"combined twice", []string{"distill.loss=l2+l2"}, []string{"-o distill.loss=l2+l2: distill.loss: \"l2+l2\": l2 appears twice"}},
		{"combined negative weight", []string{"distill.loss=l2+fine_grained", "distill.weights=[100, -1]"}, []string{"-o distill.weights=[100, -1]: distill.weights.1: must be >= 0, got -1"}},
		{"pair kind", []string{"distill.pairs=[{student: a, teacher: b, kind: l3}]"}, []string{"-o distill.pairs=[{student: a, teacher: b, kind: l3}]: distill.pairs.0.kind: \"l3\" is not one of l2, l1, cosine, kl"}},
		{"voc without root", []string{"data.format=voc"}, []string{"-o data.format=voc: data.root: empty; the voc dataset folder is required"}},
		{"several at once", []string{"train.max_iters=-1", "eval.metric=map"}, []string{
			"-o train.max_iters=-1: train.max_iters: must be >= 0, got -1",
			"-o eval.metric=map: eval.metric: \"map\" is not one of voc, coco"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(base, tc.overrides)
			if err == nil {
				t.Fatal("no error")
			}
			lines := strings.Split(err.Error(), "\n")
			for _, w := range tc.want {
				if !slices.Contains(lines, w) {
					t.Errorf("error\n  %s\nlacks line\n  %s", strings.Join(lines, "\n  "), w)
				}
			}
			if len(lines) != len(tc.want) {
				t.Errorf("%d error lines, want %d:\n  %s", len(lines), len(tc.want), strings.Join(lines, "\n  "))
			}
		})
	}
}

func TestModelHash(t *testing.T) {
	base := filepath.Join(presetDir, "yolov3_mobilenet_v1_voc.yml")
	h0 := mustLoad(t, base).ModelHash()
	if len(h0) != 64 {
		t.Fatalf("hash %q is not 64 hex digits", h0)
	}
	if h := mustLoad(t, base).ModelHash(); h != h0 {
		t.Fatalf("hash not stable: %s then %s", h0, h)
	}
	cases := []struct {
		override string
		changes  bool
	}{
		{"train.base_lr=0.01", false},
		{"train.max_iters=10", false},
		{"data.augment.flip=false", false},
		{"eval.nms.nms_threshold=0.5", false},
		{"distill.weight=3", false},
		{"loss.label_smooth=true", false},
		{"data.root=/elsewhere", false},
		{"model.backbone=resnet34", true},
		{"model.backbone_width=0.5", true},
		{"model.head_width=0.75", true},
		{"model.anchors.0=[11, 13]", true},
		{"model.anchor_masks=[[6, 8, 7], [3, 4, 5], [0, 1, 2]]", true},
		{"model.obj_bias_init=-4.6", true},
		{"model.layout=paddle", false}, // the preset's (PaddleDetection's network)
		{"model.layout=torch", true},
		{"model.layout=", true}, // empty means torch
		{"data.classes.0=airplane", true},
	}
	for _, tc := range cases {
		h := mustLoad(t, base, tc.override).ModelHash()
		if (h != h0) != tc.changes {
			t.Errorf("-o %s: hash changed = %v, want %v", tc.override, h != h0, tc.changes)
		}
	}
	// "" is torch, the default.
	if mustLoad(t, base, "model.layout=").ModelHash() != mustLoad(t, base, "model.layout=torch").ModelHash() {
		t.Error("layout \"\" and torch hash differently")
	}
	// Teacher and student presets differ.
	if mustLoad(t, filepath.Join(presetDir, "yolov3_r34_voc.yml")).ModelHash() == h0 {
		t.Error("r34 and mobilenet presets hash equal")
	}
}

func TestCanonicalRoundTrip(t *testing.T) {
	for _, f := range presets(t) {
		c := mustLoad(t, f)
		y := c.YAML()
		c2, err := Parse(y, "canonical", nil)
		if err != nil {
			t.Fatalf("%s: canonical YAML does not load: %v\n%s", f, err, y)
		}
		if y2 := c2.YAML(); string(y2) != string(y) {
			t.Errorf("%s: canonical YAML not stable:\n%s\n---\n%s", f, y, y2)
		}
		c2.Path = c.Path
		if !reflect.DeepEqual(normalise(c), normalise(c2)) {
			t.Errorf("%s: round trip changed the configuration", f)
		}
		if c.ModelHash() != c2.ModelHash() {
			t.Errorf("%s: round trip changed the model hash", f)
		}
	}
	// Floats that need an exponent survive too.
	c := Defaults()
	c.Train.BaseLR = 1e-5
	c.Train.WeightDecay = 3.0000000000000004e-7
	c2, err := Parse(c.YAML(), "x", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c2.Train.BaseLR != 1e-5 || c2.Train.WeightDecay != 3.0000000000000004e-7 {
		t.Errorf("floats changed: %v %v", c2.Train.BaseLR, c2.Train.WeightDecay)
	}
}

// normalise makes empty and nil slices equal for comparisons.
func normalise(c *Config) Config {
	d := *c
	if len(d.Distill.Pairs) == 0 {
		d.Distill.Pairs = nil
	}
	if len(d.Train.Milestones) == 0 {
		d.Train.Milestones = nil
	}
	if len(d.Data.Classes) == 0 {
		d.Data.Classes = nil
	}
	return d
}

func TestNearest(t *testing.T) {
	cases := []struct{ typed, want string }{
		{"train.base_rl", "train.base_lr"},
		{"base_lr", "train.base_lr"},
		{"max_iters", "train.max_iters"},
		{"snapshot_iter", "train.snapshot_iter"},
		{"model.anchor_mask", "model.anchor_masks"},
		{"eval.nms.score_thresh", "eval.nms.score_threshold"},
		{"distill.pairs.3.knd", "distill.pairs.3.kind"},
		{"data.augment.mixup.epoch", "data.augment.mixup.epochs"},
		{"data.augment.multiscale", "data.augment.multi_scale"},
		{"use_fine_grained_loss", "loss.use_fine_grained_loss"}, // PaddleDetection's top-level key
	}
	for _, tc := range cases {
		if got := Nearest(tc.typed); got != tc.want {
			t.Errorf("Nearest(%q) = %q, want %q", tc.typed, got, tc.want)
		}
	}
	keys := Keys()
	for _, k := range []string{"model", "model.anchors", "train.base_lr", "eval.nms.keep_top_k", "distill.pairs.N.kind", "data.augment.mixup.alpha"} {
		if !slices.Contains(keys, k) {
			t.Errorf("Keys() lacks %s", k)
		}
	}
	if slices.Contains(keys, "path") || slices.Contains(keys, "Path") {
		t.Error("Keys() lists the unserialised Path")
	}
}

func TestLevenshtein(t *testing.T) {
	cases := []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"a", "", 1}, {"", "abc", 3}, {"kitten", "sitting", 3}, {"base_rl", "base_lr", 2}, {"flaw", "lawn", 2},
	}
	for _, tc := range cases {
		if got := levenshtein(tc.a, tc.b); got != tc.want {
			t.Errorf("levenshtein(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestTeacherPath(t *testing.T) {
	c := mustLoad(t, filepath.Join(presetDir, "bccd_student.yml"))
	if got, want := c.TeacherPath(), filepath.Join(presetDir, "bccd_teacher.yml"); got != want {
		t.Errorf("TeacherPath = %q, want %q", got, want)
	}
	c.Distill.Teacher = "/abs/t.yml"
	if got := c.TeacherPath(); got != "/abs/t.yml" {
		t.Errorf("absolute TeacherPath = %q", got)
	}
}

func TestEmptyFileGivesDefaults(t *testing.T) {
	p := filepath.Join(t.TempDir(), "empty.yml")
	if err := os.WriteFile(p, []byte("# nothing\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := mustLoad(t, p)
	d := Defaults()
	d.Path = p
	d.overrides = c.overrides // which -o overrides were given (none)
	if !reflect.DeepEqual(*c, d) {
		t.Error("an empty file does not give the defaults")
	}
}

// The canonical form and the model hash are part of the file formats
// (checkpoints store the text; soft-target files carry the hash): changing
// either makes existing files incompatible, so they are pinned. The hash is
// sha256("yolodistill-model-hash-v1\n" + the model section of the canonical
// text + "classes: [...]\n"), recomputed here from the golden text.
func TestCanonicalGolden(t *testing.T) {
	want, err := os.ReadFile(filepath.Join(fixtureDir, "canonical_defaults.yml"))
	if err != nil {
		t.Fatal(err)
	}
	c := Defaults()
	if got := c.YAML(); string(got) != string(want) {
		t.Errorf("canonical YAML of Defaults changed:\n%s", got)
	}
	lines := strings.Split(string(want), "\n")
	i, j := slices.Index(lines, "model:"), slices.Index(lines, "loss:")
	sum := sha256.Sum256([]byte(modelHashVersion + strings.Join(lines[i:j], "\n") + "\nclasses: []\n"))
	if got, w := c.ModelHash(), hex.EncodeToString(sum[:]); got != w {
		t.Errorf("ModelHash = %s, want %s", got, w)
	}
	const pinned = "56db4474cb50633d063addd29047a23485dffa57bc98adeb90230adca6bfe814" // also computed with Python's hashlib
	if got := c.ModelHash(); got != pinned {
		t.Errorf("ModelHash of Defaults = %s, pinned %s", got, pinned)
	}
}

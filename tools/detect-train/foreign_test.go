package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"yolodistill/pkg/checkpoint"
	"yolodistill/pkg/cli/clitest"
	"yolodistill/pkg/config"
	"yolodistill/pkg/detector"
	"yolodistill/pkg/train"
	"yolodistill/pkg/weights"
	"yolodistill/pkg/weights/weightstest"
)

func fixture(t *testing.T, name string) *weightstest.Fixture {
	t.Helper()
	fixtures, _, _ := weightstest.Load(t)
	for i := range fixtures {
		if fixtures[i].Name == name {
			return &fixtures[i]
		}
	}
	t.Fatalf("no fixture %s", name)
	return nil
}

// TestPretrainedBackbone: a torchvision ResNet state_dict initialises the
// torch-layout backbone (classifier and counters skipped); the log says the
// head keeps its initialiser; train.max_iters=0 writes that model as
// model_final without a step.
func TestPretrainedBackbone(t *testing.T) {
	f := fixture(t, "tv_resnet18.pth")
	out := filepath.Join(t.TempDir(), "run")
	r := clitest.Run(t, run, tinyArgs(out, "-o", "model.backbone=resnet18", "-o", fmt.Sprintf("model.backbone_width=%g", f.Model.BackboneWidth),
		"-o", "train.max_iters=0", "--pretrained", f.Path)...)
	if r.Code != 0 {
		t.Fatalf("exit %d\n%s", r.Code, r.Stderr)
	}
	for _, w := range []string{"tv_resnet18.pth: loaded 100 tensors", "torchvision names: the backbone only", "2 ImageNet classifier", "the file holds no head", "train.max_iters is 0"} {
		if !strings.Contains(r.Stderr, w) {
			t.Errorf("stderr does not mention %q:\n%s", w, r.Stderr)
		}
	}
	c, err := checkpoint.Load(filepath.Join(out, train.FinalFile))
	if err != nil {
		t.Fatal(err)
	}
	file, err := weights.Read(f.Path)
	if err != nil {
		t.Fatal(err)
	}
	for ours, theirs := range map[string]string{"backbone.conv1.weight": "conv1.weight", "backbone.res5b.branch2b.bn.var": "layer4.1.bn2.running_var"} {
		sec := checkpoint.SectionParams
		if strings.HasSuffix(ours, ".var") {
			sec = checkpoint.SectionBNStats
		}
		if got, want := c.Tensor(sec, ours), file.Tensor(theirs); got == nil || want == nil || !slices.Equal(got.Data, want.Data) {
			t.Errorf("%s in model_final is not the file's %s", ours, theirs)
		}
	}
	if c.State.Iteration != 0 {
		t.Errorf("model_final at iteration %d", c.State.Iteration)
	}
}

// TestConvertPaddleTar: detect-train -o train.max_iters=0 --pretrained TAR
// turns PaddleDetection weights into our checkpoint; it runs as PyTorch's
// reference network does.
func TestConvertPaddleTar(t *testing.T) {
	f := fixture(t, "mbv1_paddle.tar")
	_, input, shape := weightstest.Load(t)
	out := filepath.Join(t.TempDir(), "run")
	args := []string{"-c", weightstest.BaseConfig(t), "--out", out, "-o", "train.max_iters=0", "--pretrained", f.Path}
	for _, o := range f.Overrides() {
		args = append(args, "-o", o)
	}
	r := clitest.Run(t, run, args...)
	if r.Code != 0 {
		t.Fatalf("exit %d\n%s", r.Code, r.Stderr)
	}
	if !strings.Contains(r.Stderr, "the whole model") || !strings.Contains(r.Stderr, "training state") {
		t.Errorf("stderr:\n%s", r.Stderr)
	}
	cfg, err := config.Load(weightstest.BaseConfig(t), f.Overrides())
	if err != nil {
		t.Fatal(err)
	}
	d, _, err := detector.Load(context.Background(), cfg, filepath.Join(out, train.FinalFile), "")
	if err != nil {
		t.Fatal(err)
	}
	outs, _, err := d.Predict(input, shape[0], shape[2], shape[3])
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range f.Outputs {
		weightstest.Compare(t, fmt.Sprintf("output %d", i), outs[i], o.Data, 1e-4)
	}
}

// TestPretrainedForeignMismatch: foreign weights of another network list
// what does not fit and the run stops before any step.
func TestPretrainedForeignMismatch(t *testing.T) {
	f := fixture(t, "mbv1_torch.pth")
	out := filepath.Join(t.TempDir(), "run")
	r := clitest.Run(t, run, tinyArgs(out, "-o", "train.max_iters=1", "-o", `data.eval_split=""`, "--pretrained", f.Path)...)
	if r.Code != 1 {
		t.Fatalf("exit %d\n%s", r.Code, r.Stderr)
	}
	for _, w := range []string{"detect-train: error: pretrained weights:", "mbv1_torch.pth", "mis-shaped", "backbone.conv1.weight (file name backbone.stem.0.weight)"} {
		if !strings.Contains(r.Stderr, w) {
			t.Errorf("stderr does not mention %q:\n%s", w, r.Stderr)
		}
	}
}

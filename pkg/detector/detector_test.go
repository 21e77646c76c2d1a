package detector

import (
	"context"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"yolodistill/pkg/checkpoint"
	"yolodistill/pkg/config"
	"yolodistill/pkg/yolo/decode"
)

// tinyConfig is the synthetic-set student preset shrunk further.
func tinyConfig(t *testing.T, extra ...string) *config.Config {
	t.Helper()
	o := append([]string{"model.backbone_width=0.25", "model.head_width=0.125"}, extra...)
	cfg, err := config.Load(filepath.Join("..", "..", "pipelines", "configs", "synth_student.yml"), o)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func randInput(n int, seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, 1))
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	return x
}

func TestDetectorShapesAndReuse(t *testing.T) {
	d, err := New(tinyConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	C := d.Spec.NumClasses
	cases := []struct {
		name    string
		n, h, w int
	}{
		{"square 64", 2, 64, 64},
		{"non-square", 1, 96, 64},
	}
	for _, tc := range cases {
		outs, shapes, err := d.Predict(randInput(tc.n*3*tc.h*tc.w, 1), tc.n, tc.h, tc.w)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		for i, s := range shapes {
			want := [4]int{tc.n, 3 * (5 + C), tc.h / d.Spec.Strides[i], tc.w / d.Spec.Strides[i]}
			if s != want {
				t.Errorf("%s: output %d shape %v, want %v", tc.name, i, s, want)
			}
			if len(outs[i]) != s[0]*s[1]*s[2]*s[3] {
				t.Errorf("%s: output %d has %d values for %v", tc.name, i, len(outs[i]), s)
			}
		}
		a, _ := d.Net(tc.n, tc.h, tc.w, false)
		b, _ := d.Net(tc.n, tc.h, tc.w, false)
		if a != b {
			t.Errorf("%s: the graph was rebuilt", tc.name)
		}
	}
	if _, _, err := d.Predict(make([]float32, 3*50*50), 1, 50, 50); err == nil {
		t.Error("50 px input: no error")
	}
	if _, err := d.Net(1, 64, 64, true); err == nil || !strings.Contains(err.Error(), "OnBuild") {
		t.Errorf("training graph without losses: %v", err)
	}
}

func TestDetectorObjBiasInit(t *testing.T) {
	d, err := New(tinyConfig(t, "model.obj_bias_init=-4.5"))
	if err != nil {
		t.Fatal(err)
	}
	C := d.Spec.NumClasses
	for i := range d.Spec.Outputs {
		p := d.Params.Get("head." + string(rune('0'+i)) + ".out.bias")
		if p == nil {
			t.Fatalf("no bias for output %d", i)
		}
		for c, v := range p.Data {
			want := float32(0)
			if c%(5+C) == 4 {
				want = -4.5
			}
			if v != want {
				t.Errorf("output %d bias channel %d = %g, want %g", i, c, v, want)
			}
		}
	}
}

func TestDetectorCheckpointRoundTrip(t *testing.T) {
	cfg := tinyConfig(t)
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	const n, h, w = 2, 64, 64
	x := randInput(n*3*h*w, 2)
	// Move the BatchNorm running statistics away from their initial values.
	net, err := d.Net(n, h, w, false)
	if err != nil {
		t.Fatal(err)
	}
	net.Graph.SetInput(x)
	if err := net.Graph.Forward(true); err != nil {
		t.Fatal(err)
	}
	outs, _, err := d.Predict(x, n, h, w)
	if err != nil {
		t.Fatal(err)
	}
	want := make([][]float32, len(outs))
	for i := range outs {
		want[i] = append([]float32(nil), outs[i]...)
	}
	path := filepath.Join(t.TempDir(), "m.ckpt")
	if err := checkpoint.Save(path, d.ToCheckpoint()); err != nil {
		t.Fatal(err)
	}
	c, err := checkpoint.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.NumParams(checkpoint.SectionBNStats) == 0 || c.NumParams(checkpoint.SectionParams) != d.Params.NumTrainable() {
		t.Fatalf("checkpoint sections: %d params (model %d), %d bn stats", c.NumParams(checkpoint.SectionParams), d.Params.NumTrainable(), c.NumParams(checkpoint.SectionBNStats))
	}
	cfg2 := *cfg
	cfg2.Train.Seed = 99 // other initial values
	d2, err := New(&cfg2)
	if err != nil {
		t.Fatal(err)
	}
	before, _, _ := d2.Predict(x, n, h, w)
	if before[0][0] == want[0][0] {
		t.Fatal("a differently seeded detector gives the same output: the test proves nothing")
	}
	if err := d2.LoadCheckpoint(c); err != nil {
		t.Fatal(err)
	}
	got, _, err := d2.Predict(x, n, h, w)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		for j := range want[i] {
			if got[i][j] != want[i][j] {
				t.Fatalf("output %d value %d: %g after reload, %g before", i, j, got[i][j], want[i][j])
			}
		}
	}
	// Detect maps boxes into the original image.
	pl := []decode.Placement{decode.Stretch(200, 100, w, h), decode.Stretch(64, 64, w, h)}
	dets, err := d2.Detect(x, n, h, w, pl)
	if err != nil {
		t.Fatal(err)
	}
	for i, ds := range dets {
		for _, b := range ds {
			if b.X0 < 0 || b.Y0 < 0 || b.X1 > float64(pl[i].OrigW) || b.Y1 > float64(pl[i].OrigH) || b.Label < 0 || b.Label >= d.Spec.NumClasses {
				t.Fatalf("image %d: box %+v outside %dx%d or bad label", i, b, pl[i].OrigW, pl[i].OrigH)
			}
		}
	}
}

func TestDetectorCheckpointMismatch(t *testing.T) {
	d, err := New(tinyConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	other, err := New(tinyConfig(t, "model.head_width=0.25"))
	if err != nil {
		t.Fatal(err)
	}
	c := other.ToCheckpoint()
	c.Path = "other.ckpt"
	p0 := d.Params.Params()[0]
	keep := append([]float32(nil), p0.Data...)
	err = d.LoadCheckpoint(c)
	var me *checkpoint.MismatchError
	if !errors.As(err, &me) {
		t.Fatalf("error %v, want a *checkpoint.MismatchError", err)
	}
	for _, want := range []string{"other.ckpt", "head.0.conv0.weight", "in checkpoint"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
	for i := range keep {
		if p0.Data[i] != keep[i] {
			t.Fatal("a failed strict load changed the weights")
		}
	}
	// Pretrained loading: shape differences are an error naming the tensor.
	if _, err := d.LoadPretrained(c); err == nil || !strings.Contains(err.Error(), "head.0.conv0.weight") {
		t.Errorf("LoadPretrained with shape differences: %v", err)
	}
	// A checkpoint missing a tensor loads the rest and reports it.
	c2 := d.ToCheckpoint()
	sec := c2.Section(checkpoint.SectionParams)
	dropped := sec.Tensors[0].Name
	sec.Tensors = sec.Tensors[1:]
	miss, err := d.LoadPretrained(c2)
	if err != nil {
		t.Fatal(err)
	}
	if len(miss) != 1 || miss[0].Name != dropped || miss[0].Kind != checkpoint.Missing {
		t.Errorf("LoadPretrained reported %v, want %s missing", miss, dropped)
	}
}

// TestLoadDetectorIgnoresAdapters: a student-train checkpoint holding learned
// distillation adapters loads for inference; any other extra tensor does not.
func TestLoadDetectorIgnoresAdapters(t *testing.T) {
	cfg := tinyConfig(t)
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		extra   string
		wantErr bool
	}{
		{"adapter", TrainingOnlyPrefix + "pair.0.adapter.0.weight", false},
		{"unknown tensor", "head.9.out.weight", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := d.ToCheckpoint()
			if err := c.Add(checkpoint.SectionParams, tc.extra, []int{2, 2, 1, 1}, make([]float32, 4)); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "s.ckpt")
			if err := checkpoint.Save(path, c); err != nil {
				t.Fatal(err)
			}
			_, _, err := Load(context.Background(), cfg, path, "")
			if (err != nil) != tc.wantErr {
				t.Fatalf("Load: %v, want error %v", err, tc.wantErr)
			}
		})
	}
}

package weights_test

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"yolodistill/pkg/config"
	"yolodistill/pkg/detector"
	"yolodistill/pkg/weights"
	"yolodistill/pkg/weights/weightstest"
)

// tol is the bar: our forward equals PyTorch's (float64) to 1e-4
// relative. Measured: about 1e-6 (float32 rounding).
const tol = 1e-4

func fixtureConfig(t *testing.T, f *weightstest.Fixture, extra ...string) *config.Config {
	t.Helper()
	cfg, err := config.Load(weightstest.BaseConfig(t), append(f.Overrides(), extra...))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

var wantScheme = map[string]weights.Scheme{
	"mbv1_paddle.tar": weights.SchemePaddle, "mbv1_paddle2.pdparams": weights.SchemePaddle,
	"r18_paddle.pdparams": weights.SchemePaddle, "mbv1_torch.pth": weights.SchemeTorch,
	"mbv1_torch.safetensors": weights.SchemeTorch, "r18_torch_legacy.pt": weights.SchemeTorch,
	"tv_resnet18.pth": weights.SchemeTorchvision,
}

// TestFixturesForward: every whole-model fixture loads through
// detector.Load (the way every tool loads a model) and our forward equals
// PyTorch's.
func TestFixturesForward(t *testing.T) {
	fixtures, input, shape := weightstest.Load(t)
	n := 0
	for _, f := range fixtures {
		if f.Part != "model" {
			continue
		}
		n++
		t.Run(f.Name, func(t *testing.T) {
			cfg := fixtureConfig(t, &f)
			d, warn, err := detector.Load(context.Background(), cfg, f.Path, "")
			if err != nil {
				t.Fatal(err)
			}
			if warn != "" {
				t.Errorf("warning %q", warn)
			}
			file, err := weights.Read(f.Path)
			if err != nil {
				t.Fatal(err)
			}
			m, err := d.Map(file)
			if err != nil {
				t.Fatal(err)
			}
			if m.Scheme != wantScheme[f.Name] {
				t.Errorf("scheme %s, want %s", m.Scheme, wantScheme[f.Name])
			}
			outs, _, err := d.Predict(input, shape[0], shape[2], shape[3])
			if err != nil {
				t.Fatal(err)
			}
			for i, o := range f.Outputs {
				weightstest.Compare(t, fmt.Sprintf("output %d", i), outs[i], o.Data, tol)
			}
		})
	}
	if n < 6 {
		t.Fatalf("%d whole-model fixtures, want 6", n)
	}
}

// TestTorchvisionBackbone: a torchvision ResNet state_dict fills the
// torch-layout backbone (its classifier skipped); the head is left alone, a
// whole-model load refuses it, and the backbone maps equal torchvision's.
func TestTorchvisionBackbone(t *testing.T) {
	fixtures, input, shape := weightstest.Load(t)
	var f *weightstest.Fixture
	for i := range fixtures {
		if fixtures[i].Part == "backbone" {
			f = &fixtures[i]
		}
	}
	if f == nil {
		t.Fatal("no backbone fixture")
	}
	cfg := fixtureConfig(t, f)
	d, err := detector.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	file, err := weights.Read(f.Path)
	if err != nil {
		t.Fatal(err)
	}
	m, err := d.Map(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Parts(); err != nil {
		t.Fatal(err)
	}
	if m.Loaded() != "the backbone only" || m.Scheme != weights.SchemeTorchvision {
		t.Errorf("loaded %s with %s names", m.Loaded(), m.Scheme)
	}
	if !strings.Contains(m.Summary(), "ImageNet classifier") || !strings.Contains(m.Summary(), "training state") {
		t.Errorf("summary does not report the skipped classifier and counters: %s", m.Summary())
	}
	err = m.Whole()
	if err == nil || !strings.Contains(err.Error(), "backbone alone") || !strings.Contains(err.Error(), "holds nothing of the head (106 tensors)") {
		t.Errorf("Whole: %v", err)
	}
	if _, _, err := detector.Load(context.Background(), cfg, f.Path, ""); err == nil || !strings.Contains(err.Error(), "tv_resnet18.pth") {
		t.Errorf("detector.Load of a backbone: %v", err)
	}
	if _, err := d.LoadPretrained(m.Checkpoint()); err != nil {
		t.Fatal(err)
	}
	net, err := d.Net(shape[0], shape[2], shape[3], false)
	if err != nil {
		t.Fatal(err)
	}
	if err := net.Graph.SetInput(input); err != nil {
		t.Fatal(err)
	}
	if err := net.Graph.Forward(false); err != nil {
		t.Fatal(err)
	}
	for i, o := range f.Outputs {
		name := fmt.Sprintf("backbone.c%d", 3+i)
		got, _ := net.Graph.Tensor(name)
		weightstest.Compare(t, name, got, o.Data, tol)
	}
}

// extractTar unpacks a fixture tar into a fresh folder and returns the
// folder holding the variable files.
func extractTar(t *testing.T, path string, keep func(name string) bool) string {
	t.Helper()
	dir := t.TempDir()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	tr := tar.NewReader(fh)
	out := ""
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if h.Typeflag == tar.TypeDir {
			os.MkdirAll(p, 0o755)
			out = p
			continue
		}
		if keep != nil && !keep(filepath.Base(p)) {
			continue
		}
		b, _ := io.ReadAll(tr)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestPaddleFolder: the unpacked tar (a folder of variable files, as
// PaddleDetection unpacks its downloads) loads the same; a folder of only
// the backbone's variables is a backbone (Parts accepts it, Whole does not).
func TestPaddleFolder(t *testing.T) {
	fixtures, input, shape := weightstest.Load(t)
	var f *weightstest.Fixture
	for i := range fixtures {
		if fixtures[i].Name == "mbv1_paddle.tar" {
			f = &fixtures[i]
		}
	}
	cfg := fixtureConfig(t, f)
	dir := extractTar(t, f.Path, nil)
	d, _, err := detector.Load(context.Background(), cfg, dir, "")
	if err != nil {
		t.Fatal(err)
	}
	outs, _, err := d.Predict(input, shape[0], shape[2], shape[3])
	if err != nil {
		t.Fatal(err)
	}
	weightstest.Compare(t, "output 0", outs[0], f.Outputs[0].Data, tol)

	bb := extractTar(t, f.Path, func(name string) bool { return !strings.HasPrefix(name, "yolo_") })
	file, err := weights.Read(bb)
	if err != nil {
		t.Fatal(err)
	}
	if file.Format != weights.FormatPaddleDir {
		t.Errorf("format %s", file.Format)
	}
	m, err := d.Map(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Parts(); err != nil || m.Loaded() != "the backbone only" {
		t.Errorf("backbone folder: Parts %v, loaded %s", err, m.Loaded())
	}
	if m.Whole() == nil {
		t.Error("a backbone folder passed Whole")
	}
}

// TestStrictness: weights of another model list what is missing,
// mis-shaped and unexpected, and say which layout PaddleDetection needs.
func TestStrictness(t *testing.T) {
	fixtures, _, _ := weightstest.Load(t)
	byName := map[string]*weightstest.Fixture{}
	for i := range fixtures {
		byName[fixtures[i].Name] = &fixtures[i]
	}
	for _, tc := range []struct {
		name, file string
		extra      []string
		want       []string
	}{
		{"paddle mobilenet into torch layout", "mbv1_paddle.tar", []string{"model.layout=torch"}, []string{"mbv1_paddle.tar", "model.layout: paddle"}},
		{"paddle resnet into torch layout", "r18_paddle.pdparams", []string{"model.layout=torch"}, []string{"unexpected", "res2a_branch1_weights", "model.layout: paddle"}},
		{"other class count", "mbv1_torch.pth", []string{"model.num_classes=3", "data.classes=[a,b,c]"}, []string{"mis-shaped", "head.0.out.weight (file name head.outs.0.weight): [21 64 1 1] in the file, [24 64 1 1] in the model"}},
		{"other width", "r18_torch_legacy.pt", []string{"model.head_width=0.125"}, []string{"mis-shaped", "head.0.conv0.weight"}},
		{"other backbone", "mbv1_torch.pth", []string{"model.backbone=resnet18"}, []string{"holds nothing of the backbone (100 tensors)", "unexpected", "backbone.s8.0.0.0.weight"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := fixtureConfig(t, byName[tc.file], tc.extra...)
			_, _, err := detector.Load(context.Background(), cfg, byName[tc.file].Path, "")
			var me *weights.MismatchError
			if !errors.As(err, &me) {
				t.Fatalf("error %v, want a *weights.MismatchError", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
		})
	}
}

// TestOpenURL: weights served over http are downloaded once into the cache
// and read from it; a body that is no weights file is refused and not kept.
func TestOpenURL(t *testing.T) {
	body, err := os.ReadFile(filepath.Join(weightstest.Dir(t), "mbv1_paddle.tar"))
	if err != nil {
		t.Fatal(err)
	}
	gets := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gets++
		if strings.HasSuffix(r.URL.Path, "junk.tar") {
			io.WriteString(w, "this is not a tar")
			return
		}
		w.Write(body)
	}))
	defer srv.Close()
	cache := t.TempDir()
	for i := 0; i < 2; i++ {
		f, err := weights.Open(context.Background(), srv.URL+"/m/yolov3.tar", cache)
		if err != nil {
			t.Fatal(err)
		}
		if f.Format != weights.FormatPaddleTar || f.Source != srv.URL+"/m/yolov3.tar" || len(f.Tensors) == 0 {
			t.Errorf("format %s source %s, %d tensors", f.Format, f.Source, len(f.Tensors))
		}
	}
	if gets != 1 {
		t.Errorf("%d downloads, want 1", gets)
	}
	_, err = weights.Open(context.Background(), srv.URL+"/junk.tar", cache)
	if err == nil || !strings.Contains(err.Error(), srv.URL+"/junk.tar") || !strings.Contains(err.Error(), "not a weights file") {
		t.Errorf("junk: %v", err)
	}
	ents, _ := os.ReadDir(cache)
	for _, e := range ents {
		if strings.Contains(e.Name(), "junk") {
			t.Errorf("a refused download was kept: %s", e.Name())
		}
	}
}

package weightstest

import (
	"archive/tar"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"testing"
)

// Model is the network a fixture holds (gen_fixtures.py's model_cfg).
type Model struct {
	Backbone      string  `json:"backbone"`
	BackboneWidth float64 `json:"backbone_width"`
	HeadWidth     float64 `json:"head_width"`
	NumClasses    int     `json:"num_classes"`
	Layout        string  `json:"layout"`
}

// Output is one reference output: [N, C, H, W] values in float64.
type Output struct {
	Shape []int     `json:"shape"`
	Data  []float64 `json:"data"`
}

// Fixture is one weights file and PyTorch's outputs of its model.
type Fixture struct {
	Name string // file name in testdata/weights
	Path string // absolute path
	// Format is gen_fixtures.py's label ("paddle-tar", "pdparams",
	// "torch-zip", "torch-legacy", "safetensors").
	Format string `json:"format"`
	// Part is "model" (Outputs are the three head outputs, deepest first) or
	// "backbone" (Outputs are backbone.c3, c4, c5).
	Part    string   `json:"part"`
	Model   Model    `json:"model"`
	Outputs []Output `json:"outputs"`
}

// Root returns the repository root (the folder holding go.mod), found from
// the working directory up.
func Root(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		up := filepath.Dir(dir)
		if up == dir {
			t.Fatal("weightstest: no go.mod above the working directory")
		}
		dir = up
	}
}

// Dir is testdata/weights of the repository.
func Dir(t testing.TB) string { return filepath.Join(Root(t), "testdata", "weights") }

// BaseConfig is the configuration every fixture model starts from
// (pipelines/configs/demo_student.yml: 2 classes, the default anchors);
// Overrides turn it into the fixture's model.
func BaseConfig(t testing.TB) string {
	return filepath.Join(Root(t), "pipelines", "configs", "demo_student.yml")
}

// Overrides are the -o settings that make BaseConfig the fixture's model.
func (f *Fixture) Overrides() []string {
	m := f.Model
	return []string{
		"model.backbone=" + m.Backbone,
		fmt.Sprintf("model.backbone_width=%g", m.BackboneWidth),
		fmt.Sprintf("model.head_width=%g", m.HeadWidth),
		fmt.Sprintf("model.num_classes=%d", m.NumClasses),
		"model.layout=" + m.Layout,
	}
}

// Load reads reference.json and input.bin: the fixtures sorted by name, the
// input ([N, 3, H, W], float32) and its shape.
func Load(t testing.TB) ([]Fixture, []float32, []int) {
	t.Helper()
	dir := Dir(t)
	b, err := os.ReadFile(filepath.Join(dir, "reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Input []int              `json:"input"`
		Files map[string]Fixture `json:"files"`
	}
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatalf("reference.json: %v", err)
	}
	var out []Fixture
	for name, f := range ref.Files {
		f.Name, f.Path = name, filepath.Join(dir, name)
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	raw, err := os.ReadFile(filepath.Join(dir, "input.bin"))
	if err != nil {
		t.Fatal(err)
	}
	n := 1
	for _, d := range ref.Input {
		n *= d
	}
	if len(raw) != 4*n {
		t.Fatalf("input.bin: %d bytes for shape %v", len(raw), ref.Input)
	}
	in := make([]float32, n)
	for i := range in {
		in[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return out, in, ref.Input
}

// RelErr is max |got - want| / max |want|: the relative error of got as a
// whole (0 when both are zero).
func RelErr(got []float32, want []float64) float64 {
	var maxDiff, maxRef float64
	for i, w := range want {
		maxDiff = math.Max(maxDiff, math.Abs(float64(got[i])-w))
		maxRef = math.Max(maxRef, math.Abs(w))
	}
	if maxRef == 0 {
		return maxDiff
	}
	return maxDiff / maxRef
}

// Compare fails t when got differs from want in length or by more than tol
// relative (RelErr), naming what.
func Compare(t testing.TB, what string, got []float32, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d values, want %d", what, len(got), len(want))
		return
	}
	if e := RelErr(got, want); !(e <= tol) {
		t.Errorf("%s: relative error %.3g, want <= %g", what, e, tol)
	}
}

// Var is one variable of a Paddle weights file.
type Var struct {
	Name  string
	Shape []int
	Data  []float32
}

// WritePaddleTar writes vars as PaddleDetection's released weights are
// packed: a tar of folder/NAME, one LoDTensor file per variable (version 0,
// no LoD, a TensorDesc of FP32 and the dims, raw little-endian data), as
// gen_fixtures.py's lod_tensor does.
func WritePaddleTar(t testing.TB, path, folder string, vars []Var) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: folder + "/", Mode: 0o755})
	for _, v := range vars {
		var b []byte
		b = binary.LittleEndian.AppendUint32(b, 0)
		b = binary.LittleEndian.AppendUint64(b, 0)
		b = binary.LittleEndian.AppendUint32(b, 0)
		desc := []byte{0x08, 5}
		for _, d := range v.Shape {
			desc = append(desc, 0x10)
			desc = binary.AppendUvarint(desc, uint64(d))
		}
		b = binary.LittleEndian.AppendUint32(b, uint32(len(desc)))
		b = append(b, desc...)
		for _, x := range v.Data {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: folder + "/" + v.Name, Mode: 0o644, Size: int64(len(b))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

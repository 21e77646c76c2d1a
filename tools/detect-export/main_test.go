package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"yolodistill/pkg/cli/clitest"
	"yolodistill/pkg/detector/detectortest"
	"yolodistill/pkg/export"
	"yolodistill/pkg/export/onnxpb"
	"yolodistill/pkg/weights/weightstest"
)

// fixtureArgs are the flags that select a weightstest fixture's model and
// weights.
func fixtureArgs(t *testing.T, name string) []string {
	t.Helper()
	fixtures, _, _ := weightstest.Load(t)
	for _, f := range fixtures {
		if f.Name == name {
			args := []string{"-c", weightstest.BaseConfig(t), "--weights", f.Path}
			for _, o := range f.Overrides() {
				args = append(args, "-o", o)
			}
			return args
		}
	}
	t.Fatalf("no fixture %s", name)
	return nil
}

func readModel(t *testing.T, path string) *onnxpb.ModelProto {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m onnxpb.ModelProto
	if err := proto.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return &m
}

func TestUsage(t *testing.T) {
	dir := t.TempDir()
	ck, _ := detectortest.Checkpoint(t, dir, "m.ckpt", weightstest.BaseConfig(t))
	base := []string{"-c", weightstest.BaseConfig(t), "--weights", ck}
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stderr []string
	}{
		{"help", []string{"--help"}, 0, []string{"Usage: detect-export", "--decode", "--dynamic", "PaddleDetection"}},
		{"no out", base, 2, []string{"detect-export:", "--out"}},
		{"bad format", append(base, "--out", filepath.Join(dir, "m.onnx"), "--format", "tflite"), 2, []string{"--format"}},
		{"size and dynamic", append(base, "--out", filepath.Join(dir, "m.onnx"), "--size", "64", "--dynamic"), 2, []string{"exclude"}},
		{"decode dynamic", append(base, "--out", filepath.Join(dir, "m.onnx"), "--decode", "--dynamic"), 2, []string{"--decode needs a fixed"}},
		{"bad size", append(base, "--out", filepath.Join(dir, "m.onnx"), "--size", "65"), 2, []string{"--size", "multiples of 32"}},
		{"missing weights", []string{"-c", weightstest.BaseConfig(t), "--weights", filepath.Join(dir, "none.pth"), "--out", filepath.Join(dir, "m.onnx")}, 1, []string{"detect-export:", "none.pth"}},
		{"backbone only", append(fixtureArgs(t, "tv_resnet18.pth"), "--out", filepath.Join(dir, "m.onnx")), 1, []string{"tv_resnet18.pth", "backbone"}},
		{"output folder missing", append(base, "--out", filepath.Join(dir, "no", "such", "m.onnx")), 1, []string{"detect-export:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := clitest.Run(t, run, tc.args...)
			if r.Code != tc.code {
				t.Fatalf("exit %d, want %d\n%s", r.Code, tc.code, r.Stderr)
			}
			if r.Stdout != "" {
				t.Errorf("stdout not empty: %q", r.Stdout)
			}
			for _, w := range tc.stderr {
				if !strings.Contains(r.Stderr, w) {
					t.Errorf("stderr does not mention %q:\n%s", w, r.Stderr)
				}
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "m.onnx")); err == nil {
		t.Error("a failed export wrote its output")
	}
}

// TestExportStructure: the written model is opset 13 with the documented
// inputs, outputs and metadata; BatchNorm is folded unless --keep-bn.
func TestExportStructure(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		extra   []string
		inputs  []string
		outputs []string
		bn      bool
	}{
		{"heads", []string{"--size", "64"}, []string{"image"}, export.OutputNames, false},
		{"dynamic keep-bn", []string{"--dynamic", "--keep-bn"}, []string{"image"}, export.OutputNames, true},
		{"decode", []string{"--size", "64", "--decode"}, []string{"image", "im_size"}, []string{"boxes", "scores"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".onnx")
			r := clitest.Run(t, run, append(append(fixtureArgs(t, "mbv1_paddle.tar"), "--out", out), tc.extra...)...)
			if r.Code != 0 {
				t.Fatalf("exit %d\n%s", r.Code, r.Stderr)
			}
			if !strings.HasPrefix(r.Stderr, "detect-export: wrote "+out) {
				t.Errorf("stderr %q", r.Stderr)
			}
			m := readModel(t, out)
			if len(m.OpsetImport) != 1 || m.OpsetImport[0].GetVersion() != 13 || m.OpsetImport[0].GetDomain() != "" {
				t.Errorf("opset %v", m.OpsetImport)
			}
			var ins, outs []string
			for _, v := range m.Graph.Input {
				ins = append(ins, v.GetName())
			}
			for _, v := range m.Graph.Output {
				outs = append(outs, v.GetName())
			}
			if strings.Join(ins, ",") != strings.Join(tc.inputs, ",") || strings.Join(outs, ",") != strings.Join(tc.outputs, ",") {
				t.Errorf("inputs %v outputs %v, want %v %v", ins, outs, tc.inputs, tc.outputs)
			}
			bn := false
			for _, n := range m.Graph.Node {
				bn = bn || n.GetOpType() == "BatchNormalization"
			}
			if bn != tc.bn {
				t.Errorf("BatchNormalization nodes present %v, want %v", bn, tc.bn)
			}
			meta := map[string]string{}
			for _, kv := range m.MetadataProps {
				meta[kv.GetKey()] = kv.GetValue()
			}
			for _, k := range []string{"anchors", "anchor_masks", "strides", "class_names", "input_mean", "input_std", "nms", "num_classes"} {
				if meta[k] == "" {
					t.Errorf("metadata %s missing", k)
				}
			}
			if meta["class_names"] != `["circle","square"]` || meta["strides"] != "[32,16,8]" {
				t.Errorf("metadata %v", meta)
			}
		})
	}
	// To stdout: the same bytes as to a file.
	r := clitest.Run(t, run, append(fixtureArgs(t, "mbv1_paddle.tar"), "--out", "-", "--size", "64")...)
	want, _ := os.ReadFile(filepath.Join(dir, "heads.onnx"))
	if r.Code != 0 || r.Stdout != string(want) {
		t.Errorf("--out -: exit %d, %d bytes, want %d\n%s", r.Code, len(r.Stdout), len(want), r.Stderr)
	}
}

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"yolodistill/pkg/cli/clitest"
	"yolodistill/pkg/weights/weightstest"
)

// TestWeights: --weights lists a file and, with -c, how it maps.
func TestWeights(t *testing.T) {
	dir := weightstest.Dir(t)
	fixtures, _, _ := weightstest.Load(t)
	var tar *weightstest.Fixture
	for i := range fixtures {
		if fixtures[i].Name == "mbv1_paddle.tar" {
			tar = &fixtures[i]
		}
	}
	withC := []string{"-c", weightstest.BaseConfig(t)}
	for _, o := range tar.Overrides() {
		withC = append(withC, "-o", o)
	}
	cut := filepath.Join(t.TempDir(), "cut.pth")
	b, _ := os.ReadFile(filepath.Join(dir, "mbv1_torch.pth"))
	os.WriteFile(cut, b[:len(b)/2], 0o644)
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stdout []string
		stderr string
	}{
		{"list", []string{"--weights", filepath.Join(dir, "r18_torch_legacy.pt")}, 0,
			[]string{"r18_torch_legacy.pt: PyTorch state_dict (legacy), ", "backbone.stem.0.0.weight", "int64"}, ""},
		{"map", append(slices.Clone(withC), "--weights", tar.Path), 0,
			[]string{"PaddleDetection weights tar", "with PaddleDetection names; loads: the whole model",
				"backbone.conv3_2.dw.bn.mean", "conv3_2_dw_bn_mean", "head.0.conv1.weight", "yolo_block.0.0.1.conv.weights", "ok",
				"learning_rate_0", "skipped (training state)"}, ""},
		{"map another model", append(append(slices.Clone(withC), "-o", "model.num_classes=3", "-o", "data.classes=[a,b,c]"), "--weights", tar.Path), 0,
			[]string{"head.2.out.bias", "yolo_output.2.conv.bias", "mis-shaped (file 21)"}, ""},
		{"usage", nil, 2, nil, "missing flags: --config"},
		{"with teacher", []string{"--weights", tar.Path, "-t", "x.yml"}, 2, nil, "exclude"},
		{"truncated", []string{"--weights", cut}, 1, nil, "cut.pth"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := clitest.Run(t, run, tc.args...)
			if r.Code != tc.code {
				t.Fatalf("exit %d, want %d\n%s", r.Code, tc.code, r.Stderr)
			}
			for _, w := range tc.stdout {
				if !strings.Contains(r.Stdout, w) {
					t.Errorf("stdout lacks %q", w)
				}
			}
			if tc.stderr != "" && !strings.Contains(r.Stderr, tc.stderr) {
				t.Errorf("stderr lacks %q: %s", tc.stderr, r.Stderr)
			}
		})
	}
	r := clitest.Run(t, run, append(withC, "--weights", tar.Path, "--json")...)
	var rep weightsReport
	if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil || r.Code != 0 {
		t.Fatalf("--json: exit %d, %v", r.Code, err)
	}
	if rep.Scheme != "PaddleDetection" || rep.Loads != "the whole model" || len(rep.Mapping) == 0 || len(rep.Skipped) != 5 {
		t.Errorf("--json: scheme %s, loads %s, %d pairs, %d skipped", rep.Scheme, rep.Loads, len(rep.Mapping), len(rep.Skipped))
	}
}

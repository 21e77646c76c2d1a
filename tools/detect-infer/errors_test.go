package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"yolodistill/pkg/cli/clitest"
)

func TestInferImgJSONStdout(t *testing.T) {
	tmp := t.TempDir()
	base := fixture(t, tmp)
	src := filepath.Join(tmp, "one.jpg")
	writeImage(t, src, 1, 80, 64)
	out := filepath.Join(tmp, "drawn")
	r := clitest.Run(t, run, append(base, "--infer-img", src, "--output-dir", out, "--json", "-", "--draw-threshold", "0", "--size", "96")...)
	if r.Code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", r.Code, r.Stderr)
	}
	var recs []rec
	if err := json.Unmarshal([]byte(r.Stdout), &recs); err != nil {
		t.Fatalf("stdout is not the JSON array: %v\n%s", err, r.Stdout)
	}
	if len(recs) == 0 || len(recs) > 8 {
		t.Errorf("%d detections at threshold 0, want 1..keep_top_k=8", len(recs))
	}
	if _, err := os.Stat(filepath.Join(out, "one.jpg")); err != nil {
		t.Errorf("drawn image: %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, "detections.json")); err == nil {
		t.Errorf("detections.json written although --json -")
	}
}

func TestBadInputs(t *testing.T) {
	tmp := t.TempDir()
	base := fixture(t, tmp)
	good := filepath.Join(tmp, "in", "good.png")
	os.MkdirAll(filepath.Dir(good), 0o755)
	writeImage(t, good, 0, 64, 64)
	bad := filepath.Join(tmp, "in", "broken.jpg")
	os.WriteFile(bad, []byte("\xff\xd8\xff\xe0 definitely not a jpeg"), 0o644)
	// a checkpoint of another model (wider head) for the same config
	otherDir := filepath.Join(tmp, "other")
	os.MkdirAll(otherDir, 0o755)
	other := fixture(t, otherDir, "model.head_width=0.25")
	otherCkpt := other[3]

	withWeights := func(w string, rest ...string) []string {
		a := slices.Clone(base)
		a[3] = w
		return append(a, rest...)
	}
	out := filepath.Join(tmp, "out")
	tests := []struct {
		name     string
		args     []string
		code     int
		stderrIn []string
	}{
		{"missing weights", withWeights(filepath.Join(tmp, "nope.ckpt"), "--infer-img", good, "--output-dir", out), 1, []string{"nope.ckpt"}},
		{"weights not a checkpoint", withWeights(good, "--infer-img", good, "--output-dir", out), 1, []string{"good.png", "checkpoint"}},
		{"checkpoint of another model", withWeights(otherCkpt, "--infer-img", good, "--output-dir", out), 1, []string{"does not fit", "head."}},
		{"missing image", append(slices.Clone(base), "--infer-img", filepath.Join(tmp, "gone.png"), "--output-dir", out), 1, []string{"gone.png"}},
		{"not an image extension", append(slices.Clone(base), "--infer-img", base[3], "--output-dir", out), 1, []string{"tiny.ckpt", "extension"}},
		{"empty folder", append(slices.Clone(base), "--infer-dir", t.TempDir(), "--output-dir", out), 1, []string{"no .jpg"}},
		{"output over inputs", append(slices.Clone(base), "--infer-dir", filepath.Dir(good), "--output-dir", filepath.Dir(good)), 1, []string{"overwrite"}},
		{"missing config", []string{"-c", filepath.Join(tmp, "none.yml"), "--weights", base[3], "--infer-img", good}, 1, []string{"none.yml"}},
		{"both inputs", append(slices.Clone(base), "--infer-img", good, "--infer-dir", tmp), 2, []string{"--infer-img", "--infer-dir"}},
		{"no input", slices.Clone(base), 2, []string{"--infer-img"}},
		{"bad size", append(slices.Clone(base), "--infer-img", good, "--size", "50"), 2, []string{"--size"}},
		{"bad threshold", append(slices.Clone(base), "--infer-img", good, "--draw-threshold", "1.5"), 2, []string{"--draw-threshold"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := clitest.Run(t, run, tc.args...)
			if r.Code != tc.code || r.Stdout != "" {
				t.Fatalf("exit %d (want %d), stdout %q (want empty); stderr:\n%s", r.Code, tc.code, r.Stdout, r.Stderr)
			}
			for _, s := range tc.stderrIn {
				if !strings.Contains(r.Stderr, s) {
					t.Errorf("stderr does not mention %q:\n%s", s, r.Stderr)
				}
			}
		})
	}

	// An unreadable image among good ones: reported, skipped, the rest
	// written; exit 0 within data.skip_limit (one image of two may be
	// skipped by default), exit 1 past it.
	strict := filepath.Join(tmp, "strict")
	r := clitest.Run(t, run, append(slices.Clone(base), "--infer-dir", filepath.Dir(good), "--output-dir", strict, "-o", "data.skip_limit=0")...)
	if r.Code != 1 || !strings.Contains(r.Stderr, "broken.jpg") || !strings.Contains(r.Stderr, "1 of 2 images could not be read, more than the 0") {
		t.Errorf("broken image with data.skip_limit=0: exit %d, want 1 naming the file and the count; stderr:\n%s", r.Code, r.Stderr)
	}
	out2 := filepath.Join(tmp, "out2")
	r = clitest.Run(t, run, append(slices.Clone(base), "--infer-dir", filepath.Dir(good), "--output-dir", out2)...)
	if r.Code != 0 {
		t.Fatalf("broken image among good ones: exit %d, want 0; stderr:\n%s", r.Code, r.Stderr)
	}
	if strings.Count(r.Stderr, "broken.jpg") != 1 || !strings.Contains(r.Stderr, "1 of 2 images could not be read and were skipped") {
		t.Errorf("stderr does not name the broken file once and the count:\n%s", r.Stderr)
	}
	if _, err := os.Stat(filepath.Join(out2, "good.png")); err != nil {
		t.Errorf("the good image was not written: %v", err)
	}
	if _, err := os.Stat(filepath.Join(out2, "broken.jpg")); err == nil {
		t.Errorf("an output was written for the broken image")
	}
	data, err := os.ReadFile(filepath.Join(out2, "detections.json"))
	var recs []rec
	if err != nil || json.Unmarshal(data, &recs) != nil {
		t.Errorf("detections.json missing or invalid after a skipped image: %v", err)
	}
}

func TestCancelled(t *testing.T) {
	tmp := t.TempDir()
	base := fixture(t, tmp)
	good := filepath.Join(tmp, "g.png")
	writeImage(t, good, 0, 64, 64)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var errb bytes.Buffer
	code := run(ctx, append(base, "--infer-img", good, "--output-dir", filepath.Join(tmp, "o")), strings.NewReader(""), io.Discard, &errb)
	if code != 130 {
		t.Errorf("cancelled: exit %d, want 130; stderr:\n%s", code, errb.String())
	}
}

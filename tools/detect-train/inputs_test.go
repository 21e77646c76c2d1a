package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"yolodistill/pkg/checkpoint"
	"yolodistill/pkg/cli/clitest"
	"yolodistill/pkg/detector/detectortest"
	"yolodistill/pkg/train"
)

// fixtures writes checkpoints for the bad-input tests: one of the tiny model
// (right), one of a wider head (other), and a truncated copy of right.
func fixtures(t *testing.T) (right, other, truncated string) {
	t.Helper()
	dir := t.TempDir()
	right, _ = detectortest.Checkpoint(t, dir, "right.ckpt", preset, overrides(tiny)...)
	other, _ = detectortest.Checkpoint(t, dir, "other.ckpt", preset, append(overrides(tiny), "model.head_width=0.25")...)
	data, err := os.ReadFile(right)
	if err != nil {
		t.Fatal(err)
	}
	truncated = filepath.Join(dir, "truncated.ckpt")
	if err := os.WriteFile(truncated, data[:len(data)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	return right, other, truncated
}

func TestBadInputs(t *testing.T) {
	tmp := t.TempDir()
	out := filepath.Join(tmp, "out")
	malformed := filepath.Join(tmp, "bad.yml")
	os.WriteFile(malformed, []byte("model:\n  backbone: [mobilenet_v1\n"), 0o644)
	right, other, truncated := fixtures(t)
	missing404 := httptest.NewServer(http.NotFoundHandler())
	defer missing404.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL + "/model.ckpt"
	closed.Close()
	short := []string{"-o", "train.max_iters=1", "-o", `data.eval_split=""`}
	cases := []struct {
		name string
		args []string
		code int
		want []string // substrings of stderr
	}{
		{"help", []string{"--help"}, 0, []string{"Usage: detect-train", "--pretrained=PATH|URL"}},
		{"no config", []string{"--out", out}, 2, []string{"-c CONFIG is required"}},
		{"unknown flag", []string{"-c", preset, "--bogus"}, 2, []string{"unknown flag --bogus"}},
		{"missing config", []string{"-c", filepath.Join(tmp, "nope.yml")}, 1, []string{"nope.yml", "cannot read config"}},
		{"malformed config", []string{"-c", malformed}, 1, []string{"bad.yml:2"}},
		{"unknown key", tinyArgs(out, "-o", "train.base_lrr=0.1"), 2, []string{"train.base_lrr", "did you mean train.base_lr?"}},
		{"unknown section", tinyArgs(out, "-o", "no_such_key=1"), 2, []string{"no_such_key"}},
		{"wrong type", tinyArgs(out, "-o", "train.max_iters=1.5"), 2, []string{"train.max_iters", "1.5"}},
		{"override refused by validation", tinyArgs(out, "-o", "train.max_iters=-3"), 2, []string{"-o train.max_iters=-3", "train.max_iters"}},
		{"not key=value", tinyArgs(out, "-o", "train.max_iters"), 2, []string{"want key=value"}},
		{"checkpoint of another model", tinyArgs(out, append(short, "-r", other)...), 1, []string{"other.ckpt", "head.0.conv0.weight: shape [128 256 1 1] in checkpoint, [64 256 1 1] in model"}},
		{"checkpoint without optimizer state", tinyArgs(out, append(short, "-r", right)...), 1, []string{"right.ckpt", "optimizer"}},
		{"truncated checkpoint", tinyArgs(out, append(short, "-r", truncated)...), 1, []string{"truncated.ckpt", "truncated"}},
		{"truncated checkpoint without -c", []string{"-r", truncated}, 1, []string{"truncated.ckpt", "truncated"}},
		{"pretrained of another model", tinyArgs(out, append(short, "--pretrained", other)...), 1, []string{"pretrained", "other.ckpt", "head.0.conv0.weight"}},
		{"pretrained missing file", tinyArgs(out, append(short, "--pretrained", filepath.Join(tmp, "none.ckpt"))...), 1, []string{"none.ckpt"}},
		{"pretrained URL 404", tinyArgs(out, append(short, "--cache-dir", filepath.Join(tmp, "cache"), "--pretrained", missing404.URL+"/m.ckpt")...), 1, []string{missing404.URL + "/m.ckpt", "404"}},
		{"pretrained URL refused", tinyArgs(out, append(short, "--cache-dir", filepath.Join(tmp, "cache"), "--pretrained", closedURL)...), 1, []string{closedURL}},
	}
	for _, tc := range cases {
		res := clitest.Run(t, run, tc.args...)
		if res.Code != tc.code {
			t.Errorf("%s: exit %d, want %d\n%s", tc.name, res.Code, tc.code, res.Stderr)
			continue
		}
		if res.Stdout != "" {
			t.Errorf("%s: stdout %q, want nothing", tc.name, res.Stdout)
		}
		for _, w := range tc.want {
			if !strings.Contains(res.Stderr, w) {
				t.Errorf("%s: stderr lacks %q:\n%s", tc.name, w, res.Stderr)
			}
		}
		if tc.code == 1 && !strings.HasPrefix(res.Stderr, name+": ") {
			t.Errorf("%s: message not prefixed with the tool name:\n%s", tc.name, res.Stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(out, train.FinalFile)); err == nil {
		t.Error("a failed run wrote model_final")
	}
}

// TestPretrainedURL: weights served over http are downloaded once into the
// cache and loaded; a model tensor absent from the checkpoint is reported.
func TestPretrainedURL(t *testing.T) {
	right, _, _ := fixtures(t)
	c, err := checkpoint.Load(right)
	if err != nil {
		t.Fatal(err)
	}
	sec := c.Section(checkpoint.SectionParams)
	dropped := sec.Tensors[0].Name
	sec.Tensors = sec.Tensors[1:]
	partial := filepath.Join(t.TempDir(), "partial.ckpt")
	if err := checkpoint.Save(partial, c); err != nil {
		t.Fatal(err)
	}
	body, _ := os.ReadFile(partial)
	gets := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gets++
		io.Copy(w, bytes.NewReader(body))
	}))
	defer srv.Close()
	cache := filepath.Join(t.TempDir(), "cache")
	for i := 0; i < 2; i++ {
		out := filepath.Join(t.TempDir(), "run")
		res := clitest.Run(t, run, tinyArgs(out, "-o", "train.max_iters=1", "-o", `data.eval_split=""`,
			"--cache-dir", cache, "--pretrained", srv.URL+"/w/partial.ckpt")...)
		if res.Code != 0 {
			t.Fatalf("run %d: exit %d\n%s", i, res.Code, res.Stderr)
		}
		if !strings.Contains(res.Stderr, "keep their initial values: "+dropped) || !strings.Contains(res.Stderr, "loaded ") {
			t.Errorf("run %d: stderr does not report the loaded and missing tensors:\n%s", i, res.Stderr)
		}
	}
	if gets != 1 {
		t.Errorf("%d downloads, want 1 (cached)", gets)
	}
}

package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"yolodistill/pkg/cli/clitest"
	"yolodistill/pkg/dataset"
	"yolodistill/pkg/train"
)

// damagedVOC writes a small synthetic VOC folder (32 train, 4 val images of
// 64 px) and truncates the first image of the train split and of the val
// split to half their bytes, as a download cut short would. It returns the
// folder and the two damaged file names.
func damagedVOC(t *testing.T) (root, badTrain, badVal string) {
	t.Helper()
	root = filepath.Join(t.TempDir(), "voc")
	opts := dataset.SynthOptions{Images: 40, Size: 64, Seed: 1,
		Classes: []string{"circle", "ring", "hexagon", "square", "diamond", "triangle", "cross", "star"}}
	if _, err := dataset.WriteSynth(context.Background(), root, "voc", opts, 2); err != nil {
		t.Fatal(err)
	}
	first := func(split string) string {
		b, err := os.ReadFile(filepath.Join(root, "ImageSets", "Main", split+".txt"))
		if err != nil {
			t.Fatal(err)
		}
		name := strings.Fields(string(b))[0] + ".jpg"
		p := filepath.Join(root, "JPEGImages", name)
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data[:len(data)/2], 0o644); err != nil {
			t.Fatal(err)
		}
		return name
	}
	return root, first("train"), first("val")
}

// TestDamagedImageNeverLosesTheRun: a truncated JPEG in the training split
// and one in the eval split are skipped with one warning each, naming the
// file and the reason; the run finishes (exit 0) with model_final, and
// metrics.jsonl counts the skipped training image. With data.skip_limit=0
// the run stops with exit 1 at the first damaged image and saves a
// checkpoint; resuming from it (with the limit raised) finishes with the
// losses of the run that skipped from the start.
func TestDamagedImageNeverLosesTheRun(t *testing.T) {
	root, badTrain, badVal := damagedVOC(t)
	tmp := t.TempDir()
	common := []string{"-o", "data.root=" + root, "-o", "train.max_iters=20", "-o", "train.snapshot_iter=10"}

	full := filepath.Join(tmp, "full")
	res := clitest.Run(t, run, tinyArgs(full, common...)...)
	if res.Code != 0 {
		t.Fatalf("exit %d, want 0:\n%s", res.Code, res.Stderr)
	}
	if res.Stdout != "" {
		t.Errorf("stdout %q, want nothing", res.Stdout)
	}
	if _, err := os.Stat(filepath.Join(full, train.FinalFile)); err != nil {
		t.Fatalf("no model_final: %v", err)
	}
	for _, want := range []string{
		"warning: skipping a training image that cannot be loaded (another image fills its place in the batch): " + filepath.Join(root, "JPEGImages", badTrain) + ": corrupt jpeg",
		"warning: evaluation split \"val\": skipping an image that cannot be loaded: " + filepath.Join(root, "JPEGImages", badVal) + ": corrupt jpeg",
		"1 training image(s) could not be loaded and were skipped",
		"1 evaluation image(s) could not be loaded and were left out of the scores",
	} {
		if !strings.Contains(res.Stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, res.Stderr)
		}
	}
	// One warning per file, however often the file comes round (20
	// iterations of batch 2 go over the 32 training images more than once;
	// the eval split is scored twice).
	for _, f := range []string{badTrain, badVal} {
		n := 0
		for _, line := range strings.Split(res.Stderr, "\n") {
			if strings.Contains(line, "skipping") && strings.Contains(line, f) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s: %d warnings, want 1:\n%s", f, n, res.Stderr)
		}
	}
	recs := losses(t, full)
	skipped := -1
	for _, r := range recs {
		if r.Eval == nil {
			skipped = r.Skipped
		}
	}
	if skipped != 1 {
		t.Errorf("metrics.jsonl: last training record has skipped_images %d, want 1", skipped)
	}

	// Past the limit: exit 1 after saving a checkpoint of the iterations
	// done, which resumes.
	strict := filepath.Join(tmp, "strict")
	res = clitest.Run(t, run, tinyArgs(strict, append(slices.Clone(common), "-o", "data.skip_limit=0")...)...)
	if res.Code != 1 {
		t.Fatalf("skip_limit=0: exit %d, want 1:\n%s", res.Code, res.Stderr)
	}
	if !strings.Contains(res.Stderr, badTrain) || !strings.Contains(res.Stderr, "data.skip_limit=0") || !strings.Contains(res.Stderr, "resume with -r") {
		t.Errorf("skip_limit=0: the error does not name the file, the limit and the checkpoint:\n%s", res.Stderr)
	}
	if _, err := os.Stat(filepath.Join(strict, train.FinalFile)); err == nil {
		t.Errorf("skip_limit=0: model_final written by a run that stopped")
	}
	ckpts, _ := filepath.Glob(filepath.Join(strict, "model_*.ckpt"))
	if len(ckpts) != 1 {
		t.Fatalf("skip_limit=0: checkpoints %v, want one", ckpts)
	}
	res = clitest.Run(t, run, tinyArgs(strict, append(slices.Clone(common), "-r", ckpts[0])...)...)
	if res.Code != 0 {
		t.Fatalf("resume: exit %d:\n%s", res.Code, res.Stderr)
	}
	got, want := losses(t, strict), losses(t, full)
	if len(got) != len(want) {
		t.Fatalf("resumed run logged %d records, the full run %d", len(got), len(want))
	}
	for i := range want {
		if got[i].Loss != want[i].Loss || got[i].Skipped != want[i].Skipped {
			t.Errorf("record %d: resumed loss %v skipped %d, full run %v skipped %d", i, got[i].Loss, got[i].Skipped, want[i].Loss, want[i].Skipped)
		}
	}
}

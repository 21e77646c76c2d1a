package main

import (
	"fmt"
	"math"
	"path/filepath"
	"testing"

	"yolodistill/pkg/cli/clitest"
	"yolodistill/pkg/train"
)

// TestSparseSoftTargets: a sparse soft-target file is refused for l2 (it
// reads every head logit) with exit 1 before training, and trains with
// fine_grained, whose box and class terms skip the unstored cells: a
// threshold of 0 stores every cell and matches the dense file bit for bit;
// a threshold of 0.5 drops terms, so the first distillation loss (same
// weights) is below the dense one. (That the masks reach the loss, laid out
// like the batch, is checked by pkg/teacher's TestPrepareMasks.)
func TestSparseSoftTargets(t *testing.T) {
	needBins(t)
	dir := t.TempDir()
	teacherCk := teacherCkpt(t)
	files := map[string]string{"dense": "", "sparse0": "--sparse 0", "sparse5": "--sparse 0.5"}
	for name, flag := range files {
		path := filepath.Join(dir, name+".arrow")
		if code, stderr := sh(t, fmt.Sprintf("teacher-dump -c %s --weights %s --student-config %s %s --out %s", teacherYML, teacherCk, studentYML, flag, path)); code != 0 {
			t.Fatalf("dump %s: exit %d\n%s", name, code, stderr)
		}
		files[name] = path
	}

	out := filepath.Join(dir, "l2")
	refused(t, clitest.Run(t, run, "-c", studentYML, "-o", "distill.loss=l2", "--soft-targets", files["sparse5"], "--out", out),
		out, "the l2 loss reads every logit: dump dense")

	runs := map[string][]train.Record{}
	for _, name := range []string{"dense", "sparse0", "sparse5"} {
		out := filepath.Join(dir, "run_"+name)
		if res := clitest.Run(t, run, "-c", studentYML, "--soft-targets", files[name], "--out", out); res.Code != 0 {
			t.Fatalf("%s: exit %d\n%s", name, res.Code, res.Stderr)
		}
		runs[name] = metrics(t, out)
		if !exists(filepath.Join(out, "model_final.ckpt")) {
			t.Errorf("%s: no model_final.ckpt", name)
		}
	}
	compare(t, runs["dense"], runs["sparse0"], 0)
	d, s := runs["dense"], runs["sparse5"]
	ks := distillParts(s)
	if len(s) != len(d) || len(ks) == 0 {
		t.Fatalf("sparse run: %d records (dense %d), parts %v", len(s), len(d), ks)
	}
	for _, r := range s {
		if v := r.Parts[ks[0]]; !(v > 0) || math.IsInf(v, 0) || math.IsNaN(r.Loss) {
			t.Fatalf("sparse run: record %+v", r)
		}
	}
	if !(s[0].Parts[ks[0]] < d[0].Parts[ks[0]]) {
		t.Errorf("first %s: sparse 0.5 %v, dense %v; want below", ks[0], s[0].Parts[ks[0]], d[0].Parts[ks[0]])
	}
}

//go:build linux

package tools_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMakeKnobs: pipelines/knobs.mk as the pipelines use it, on a fake
// "model" and "table": a second make with the same knobs redoes nothing; other
// knobs (refuse) stop with exit 2, both values and the ways out, and leave
// the outputs as they were; REDO=1 redoes the model; a table knob (follow)
// remakes only the table; a folder with outputs from before knobs were
// recorded keeps them.
func TestMakeKnobs(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	out := t.TempDir()
	mk := filepath.Join(out, "Makefile")
	os.WriteFile(mk, []byte(`SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DELETE_ON_ERROR:
include pipelines/knobs.mk
OUT ?= `+out+`/run
ITERS ?= 3
SIZES ?= 64
$(OUT)/model_final.ckpt: $(OUT)/knobs.txt
	mkdir -p $(@D); echo "model $(ITERS)" >> $(OUT)/log; echo $(ITERS) > $@
$(OUT)/results.md: $(OUT)/model_final.ckpt $(OUT)/knobs-table.txt
	echo "table $(SIZES)" >> $(OUT)/log; echo "iters $$(cat $<) sizes $(SIZES)" > $@
$(eval $(call knobs_rule,$(OUT)/knobs.txt,refuse,fake-distill,give another OUT,ITERS))
$(eval $(call knobs_rule,$(OUT)/knobs-table.txt,follow,fake-distill,,SIZES))
`), 0o644)
	run := func(args ...string) (int, string) {
		c := exec.Command("make", append([]string{"-s", "-f", mk, out + "/run/results.md"}, args...)...)
		c.Dir = ".."
		var b bytes.Buffer
		c.Stdout, c.Stderr = &b, &b
		c.Run()
		return c.ProcessState.ExitCode(), b.String()
	}
	log := func() string { b, _ := os.ReadFile(filepath.Join(out, "run", "log")); return string(b) }
	table := func() string { b, _ := os.ReadFile(filepath.Join(out, "run", "results.md")); return string(b) }

	if code, msg := run(); code != 0 || log() != "model 3\ntable 64\n" {
		t.Fatalf("first make: exit %d %s; log %q", code, msg, log())
	}
	if code, msg := run(); code != 0 || log() != "model 3\ntable 64\n" {
		t.Fatalf("same knobs: exit %d %s; log %q (something was redone)", code, msg, log())
	}
	code, msg := run("ITERS=5")
	if code != 2 || log() != "model 3\ntable 64\n" || table() != "iters 3 sizes 64\n" {
		t.Fatalf("other ITERS: exit %d, log %q, table %q\n%s", code, log(), table(), msg)
	}
	for _, want := range []string{"fake-distill: " + out + "/run was made with ITERS=3", "asks for ITERS=5", "give another OUT", "REDO=1"} {
		if !strings.Contains(msg, want) {
			t.Errorf("refusal lacks %q:\n%s", want, msg)
		}
	}
	if code, msg := run("ITERS=5", "REDO=1"); code != 0 || table() != "iters 5 sizes 64\n" || !strings.Contains(msg, "redoing") {
		t.Fatalf("REDO=1: exit %d, table %q\n%s", code, table(), msg)
	}
	if code, msg := run("ITERS=5", "SIZES=32 64"); code != 0 || table() != "iters 5 sizes 32 64\n" || strings.Count(log(), "model") != 2 {
		t.Fatalf("table knob: exit %d, table %q, log %q\n%s", code, table(), log(), msg)
	}
	// Outputs from before knobs were recorded are kept.
	os.Remove(filepath.Join(out, "run", "knobs.txt"))
	os.MkdirAll(filepath.Join(out, "run", "teacher"), 0o755)
	os.WriteFile(filepath.Join(out, "run", "teacher", "model_final.ckpt"), nil, 0o644)
	if code, msg := run("ITERS=5", "SIZES=32 64"); code != 0 || strings.Count(log(), "model") != 2 || !strings.Contains(msg, "before knobs were recorded") {
		t.Fatalf("old outputs: exit %d, log %q\n%s", code, log(), msg)
	}
}

package detector

import (
	"errors"
	"math"
	"strings"
	"testing"

	"yolodistill/pkg/config"
	"yolodistill/pkg/yolo"
)

// TestMemoryCeiling: the need grows with the size and the batch, and is
// finite for absurd sizes; a size over the available memory is refused with
// the largest multiple of 32 that fits, by CheckMemory, by Net before it
// builds anything, and by CheckSizes blamed on the -o override that set it.
func TestMemoryCeiling(t *testing.T) {
	const preset = "../../pipelines/configs/synth_student.yml"
	cfg, err := config.Load(preset, []string{"eval.size=320000"})
	if err != nil {
		t.Fatal(err)
	}
	spec, err := yolo.FromModelConfig(cfg.Model)
	if err != nil {
		t.Fatal(err)
	}
	need := func(n, s int, train bool) float64 {
		v, err := MemoryNeed(spec, n, s, s, train)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if a, b, c, d := need(1, 320, false), need(1, 352, false), need(2, 320, false), need(1, 320, true); !(a < b && math.Abs(c-2*a) < 1 && d == 2*a) {
		t.Errorf("need at 320: %g, 352: %g, batch 2: %g, training: %g", a, b, c, d)
	}
	if v := need(1, 320000, false); math.IsInf(v, 0) || v < 1e13 {
		t.Errorf("need at 320000 px: %g bytes", v)
	}

	defer func(f func() (Memory, bool)) { availableMemory = f }(availableMemory)
	availableMemory = func() (Memory, bool) { return Memory{1 << 30, "a test's 1 GiB"}, true }
	err = CheckMemory(spec, 8, 608, 608, true, 0)
	var me *MemoryError
	if !errors.As(err, &me) {
		t.Fatalf("608 px, batch 8, training in 1 GiB: %v", err)
	}
	if me.Fits%32 != 0 || me.Fits == 0 || need(8, me.Fits, true) > 1<<30 || need(8, me.Fits+32, true) <= 1<<30 {
		t.Errorf("largest size that fits: %d", me.Fits)
	}
	for _, s := range []string{"a 608x608 input needs about", "for a training graph of 8 image(s)", "more than the 1.1 GB available by a test's 1 GiB", "the largest input that fits is"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("%q lacks %q", err, s)
		}
	}
	if err := CheckMemory(spec, 1, 64, 64, false, 0); err != nil {
		t.Errorf("64 px: %v", err)
	}
	// Net refuses before building; the arena a graph already holds counts.
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Net(8, 608, 608, false); !errors.As(err, &me) {
		t.Errorf("Net: %v, want a *MemoryError", err)
	}
	// CheckSizes blames the override.
	err = CheckSizes(nil, cfg, "eval.size", []int{cfg.Eval.Size}, 1, false)
	var ce *config.Error
	if !errors.As(err, &ce) || !ce.IsUsage() || !strings.Contains(err.Error(), "-o eval.size=320000: eval.size: a 320000x320000 input") {
		t.Errorf("CheckSizes: %v", err)
	}
	// Nothing is known: everything passes.
	availableMemory = func() (Memory, bool) { return Memory{}, false }
	if err := CheckMemory(spec, 8, 608, 608, true, 0); err != nil {
		t.Errorf("unknown memory: %v", err)
	}
}

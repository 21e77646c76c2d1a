package train

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"yolodistill/pkg/augment"
	"yolodistill/pkg/checkpoint"
	"yolodistill/pkg/config"
	"yolodistill/pkg/detector"
)

// failAt is a Prepare hook that fails at iteration it.
func failAt(it int) func(context.Context, int, *augment.Batch, *detector.Net) error {
	return func(_ context.Context, i int, _ *augment.Batch, _ *detector.Net) error {
		if i == it {
			return errors.New("the batch source broke")
		}
		return nil
	}
}

// TestRunFolder: the run folder is checked before any work, and a failed
// run says so in its folder or leaves none.
func TestRunFolder(t *testing.T) {
	cfg := tinyConfig(t, "train.max_iters=3", "train.snapshot_iter=2")
	b := fixedBatch(t, cfg)
	open := func(context.Context, *config.Config, []byte, augment.Shard) (Source, error) {
		return fixedSource{b}, nil
	}
	run := func(dir string, o Options) error {
		o.Config, o.OutDir, o.Open, o.Tool, o.Name = cfg, dir, open, "detect-train", "detect-train"
		_, err := Run(context.Background(), o)
		return err
	}
	tmp := t.TempDir()

	// A file where the folder is meant.
	file := filepath.Join(tmp, "file")
	os.WriteFile(file, []byte("x"), 0o644)
	if err := run(file, Options{}); err == nil || !strings.Contains(err.Error(), "is a file, not a folder") {
		t.Errorf("run folder is a file: %v", err)
	}
	if err := run(filepath.Join(file, "sub"), Options{}); err == nil || !strings.Contains(err.Error(), "is a file") {
		t.Errorf("run folder under a file: %v", err)
	}

	// A failure before any checkpoint: nothing of value, no folder left.
	gone := filepath.Join(tmp, "gone")
	if err := run(gone, Options{Hooks: Hooks{Prepare: failAt(0)}}); err == nil {
		t.Fatal("no error")
	}
	if _, err := os.Stat(gone); !os.IsNotExist(err) {
		ents, _ := os.ReadDir(gone)
		t.Errorf("a run that failed at iteration 0 left its folder: %v", ents)
	}

	// A failure after a checkpoint: FAILED.txt names the error and the
	// checkpoint to resume from.
	kept := filepath.Join(tmp, "kept")
	err := run(kept, Options{Hooks: Hooks{Prepare: failAt(2)}})
	if err == nil {
		t.Fatal("no error")
	}
	msg, rerr := os.ReadFile(filepath.Join(kept, FailedFile))
	if rerr != nil || !strings.Contains(string(msg), "the batch source broke") || !strings.Contains(string(msg), "detect-train -r "+SnapshotPath(kept, 2)) {
		t.Errorf("%s: %q, %v", FailedFile, msg, rerr)
	}

	// Starting afresh into a folder with checkpoints is refused before any
	// work, and nothing changes there; --force (Force) runs and removes
	// FAILED.txt on success.
	err = run(kept, Options{})
	if err == nil || !strings.Contains(err.Error(), "already holds a run's checkpoints (model_2.ckpt)") || !strings.Contains(err.Error(), "--force") {
		t.Errorf("existing run: %v", err)
	}
	if _, err := os.Stat(filepath.Join(kept, FailedFile)); err != nil {
		t.Errorf("the refused run touched the folder: %v", err)
	}
	if err := run(kept, Options{Force: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(kept, FailedFile)); !os.IsNotExist(err) {
		t.Errorf("%s left after a complete run: %v", FailedFile, err)
	}

	// Resuming (-r) into the folder is no overwrite.
	if err := run(kept, Options{Resume: SnapshotPath(kept, 2)}); err != nil {
		t.Errorf("resume: %v", err)
	}
}

// TestCheckResume: a checkpoint resumes only with the tool that wrote it,
// and the refusal is a usage error naming the right command; checkpoints
// that record no tool pass.
func TestCheckResume(t *testing.T) {
	cfg := tinyConfig(t)
	d, err := detector.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, meta map[string]string) string {
		c := d.ToCheckpoint()
		for k, v := range meta {
			c.Meta[k] = v
		}
		p := filepath.Join(dir, name)
		if err := checkpoint.Save(p, c); err != nil {
			t.Fatal(err)
		}
		return p
	}
	student := write("student.ckpt", map[string]string{"tool": "student-train", "recipe": "fine_grained distillation, weight 1000, offline"})
	plain := write("plain.ckpt", map[string]string{"tool": "detect-train", "recipe": "none"})
	old := write("old.ckpt", nil)
	for _, c := range []struct {
		path, tool string
		want       []string // substrings of the error; none: accepted
	}{
		{student, "student-train", nil},
		{plain, "detect-train", nil},
		{old, "detect-train", nil},
		{student, "detect-train", []string{"student.ckpt was written by student-train (fine_grained distillation, weight 1000, offline), not detect-train", "student-train -r " + student}},
		{plain, "student-train", []string{"written by detect-train (none), not student-train", "detect-train -r " + plain, "student-train -c STUDENT --pretrained " + plain}},
	} {
		err := CheckResume(c.path, c.tool)
		if c.want == nil {
			if err != nil {
				t.Errorf("%s with %s: %v", c.path, c.tool, err)
			}
			continue
		}
		var te *ToolError
		if !errors.As(err, &te) || !te.IsUsage() {
			t.Errorf("%s with %s: %v, want a *ToolError", c.path, c.tool, err)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s with %s: %q lacks %q", c.path, c.tool, err, w)
			}
		}
	}
	if err := CheckResume(dir, "detect-train"); err == nil || !strings.Contains(err.Error(), "is a folder, not a checkpoint file") {
		t.Errorf("a folder: %v", err)
	}
}

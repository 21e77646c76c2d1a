package train

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"yolodistill/pkg/atomicfile"
	"yolodistill/pkg/checkpoint"
	"yolodistill/pkg/config"
	"yolodistill/pkg/detector"
)

// FailedFile is written into a run folder when a run fails after it wrote
// something of value there (a checkpoint, or an earlier run's files): it
// says when and why the run stopped, and which checkpoint to resume from. A
// run that completes in the folder removes it. A failed run that leaves
// nothing of value behind leaves no folder either.
const FailedFile = "FAILED.txt"

// checkMemory refuses, before anything is built, input sizes whose graphs
// need more memory than the machine has available (detector.CheckSizes):
// every data.augment.multi_scale size at train.batch_size when the batches
// come from the configuration's loader (another Source checks the sizes it
// makes), and eval.size at eval.batch_size when an eval split is set.
func checkMemory(cfg *config.Config, loader bool) error {
	if loader {
		if err := detector.CheckSizes(nil, cfg, "data.augment.multi_scale", cfg.Data.Augment.MultiScale, cfg.Train.BatchSize, true); err != nil {
			return err
		}
	}
	if cfg.Data.EvalSplit != "" {
		return detector.CheckSizes(nil, cfg, "eval.size", []int{cfg.Eval.Size}, cfg.Eval.BatchSize, false)
	}
	return nil
}

// runFolder is what Run knows about its run folder before it writes there.
type runFolder struct {
	dir     string
	existed bool            // the folder was there before the run
	before  map[string]bool // the names it held then
	wrote   bool            // the run has written into it
}

// isCheckpoint reports whether a file name is one of a run's checkpoints.
func isCheckpoint(name string) bool {
	return name == FinalFile || name == BestFile || snapshotRE.MatchString(name)
}

// prepareRunFolder checks the run folder before any work: it must be a
// folder (or not exist yet) that this process can write in, and unless
// force or resume is set it must not hold an earlier run's checkpoints,
// which the run would overwrite.
func prepareRunFolder(opt Options) (*runFolder, error) {
	rf := &runFolder{dir: opt.OutDir, before: map[string]bool{}}
	st, err := os.Stat(opt.OutDir)
	switch {
	case err == nil && !st.IsDir():
		return nil, fmt.Errorf("run folder %s is a file, not a folder: give --out a folder", opt.OutDir)
	case err == nil:
		rf.existed = true
		ents, err := os.ReadDir(opt.OutDir)
		if err != nil {
			return nil, fmt.Errorf("run folder: %w", err)
		}
		var ckpts []string
		for _, e := range ents {
			rf.before[e.Name()] = true
			if isCheckpoint(e.Name()) {
				ckpts = append(ckpts, e.Name())
			}
		}
		if len(ckpts) > 0 && !opt.Force && opt.Resume == "" {
			slices.Sort(ckpts)
			shown := strings.Join(ckpts, ", ")
			if len(ckpts) > 4 {
				shown = strings.Join(ckpts[:4], ", ") + fmt.Sprintf(", ... (%d in all)", len(ckpts))
			}
			return nil, fmt.Errorf("run folder %s already holds a run's checkpoints (%s), which this run would overwrite: resume that run with -r, give another --out, or --force to start over in it", opt.OutDir, shown)
		}
		if err := atomicfile.CheckDir(opt.OutDir); err != nil {
			return nil, fmt.Errorf("run folder: %w", err)
		}
	case errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOTDIR):
		if err := atomicfile.CheckDir(opt.OutDir); err != nil {
			return nil, fmt.Errorf("run folder: %w", err)
		}
	default:
		return nil, fmt.Errorf("run folder: %w", err)
	}
	return rf, nil
}

// failed records a run that stopped with err. When the run wrote nothing of
// value (no checkpoint, and the folder did not hold an earlier run's files),
// the files it wrote are removed, and the folder if the run created it;
// otherwise FailedFile says what happened. Interruptions are not failures
// (the loop saved a checkpoint to resume from).
func (rf *runFolder) failed(err error, tool, last string, log func(format string, args ...any)) {
	if rf == nil || !rf.wrote || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return
	}
	ents, rerr := os.ReadDir(rf.dir)
	if rerr != nil {
		return
	}
	valuable := false
	for _, e := range ents {
		if isCheckpoint(e.Name()) || (rf.before[e.Name()] && e.Name() != FailedFile) {
			valuable = true
		}
	}
	if !valuable {
		for _, e := range ents {
			os.Remove(filepath.Join(rf.dir, e.Name()))
		}
		if !rf.existed && os.Remove(rf.dir) == nil {
			log("removed the run folder %s: the run wrote nothing of value", rf.dir)
		}
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "This run of %s failed at %s:\n\n%v\n", tool, time.Now().Format(time.RFC3339), err)
	if last != "" {
		fmt.Fprintf(&b, "\nIts last checkpoint is %s: resume with `%s -r %s` once the cause is fixed.\n", last, tool, last)
	}
	fmt.Fprintf(&b, "\nA run that completes in this folder removes this file.\n")
	if werr := atomicfile.WriteBytes(filepath.Join(rf.dir, FailedFile), []byte(b.String())); werr == nil {
		log("wrote %s", filepath.Join(rf.dir, FailedFile))
	}
}

// succeeded removes a FailedFile an earlier run left.
func (rf *runFolder) succeeded() {
	if rf != nil {
		os.Remove(filepath.Join(rf.dir, FailedFile))
	}
}

// ToolError refuses to resume, with one tool, a checkpoint another tool
// wrote: detect-train would continue a distilled student without its
// distillation loss, student-train a plain detector with a distillation
// loss it never had. It is a usage error (exit 2) and names the command to
// use instead.
type ToolError struct {
	Checkpoint string
	Wrote      string // the tool that wrote it (Meta["tool"])
	Recipe     string // its distillation (Meta["recipe"]), "" when not recorded
	Tool       string // the tool asked to resume it
}

func (e *ToolError) Error() string {
	wrote := e.Wrote
	if e.Recipe != "" {
		wrote += " (" + e.Recipe + ")"
	}
	var hint string
	switch e.Wrote {
	case "student-train":
		hint = fmt.Sprintf("resume it with `student-train -r %s` and the same soft targets (--soft-targets) or teacher (--teacher-weights); %s would drop its distillation loss", e.Checkpoint, e.Tool)
	case "detect-train":
		hint = fmt.Sprintf("resume it with `detect-train -r %s`; to distil a student from its weights, start a new run: `student-train -c STUDENT --pretrained %s ...`", e.Checkpoint, e.Checkpoint)
	default:
		hint = fmt.Sprintf("resume it with `%s -r %s`", e.Wrote, e.Checkpoint)
	}
	return fmt.Sprintf("%s was written by %s, not %s: %s", e.Checkpoint, wrote, e.Tool, hint)
}

// IsUsage marks ToolError as a usage error (pkg/cli).
func (e *ToolError) IsUsage() bool { return true }

// CheckResume reads the header of the checkpoint a run is asked to resume
// and refuses one that another tool wrote (a *ToolError). Checkpoints that do
// not record their tool (written before Meta["tool"]) pass. Call it before
// anything else reads the checkpoint (its stored configuration may name a
// teacher only the other tool uses).
func CheckResume(path, tool string) error {
	c, err := checkpoint.LoadHeader(path)
	if err != nil {
		return err
	}
	if w := c.Meta["tool"]; w != "" && w != tool {
		return &ToolError{Checkpoint: path, Wrote: w, Recipe: c.Meta["recipe"], Tool: tool}
	}
	return nil
}

// sameConfig reports whether a checkpoint's stored configuration text is
// cfg's: equal texts, or equal once the stored text is read back and written
// again (a checkpoint from before keys were added to the canonical form).
func sameConfig(stored string, cfg *config.Config) bool {
	now := string(cfg.YAML())
	if stored == now {
		return true
	}
	c, err := config.Parse([]byte(stored), "checkpoint", nil)
	return err == nil && string(c.YAML()) == now
}

package train

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"yolodistill/pkg/checkpoint"
	"yolodistill/pkg/config"
)

// LoadRunConfig returns a training run's configuration: the file at path with
// the -o overrides, or, when path is "", the configuration stored in the
// resume checkpoint (with the overrides applied to it). Errors name the file.
func LoadRunConfig(path, resume string, overrides []string) (*config.Config, error) {
	if path != "" {
		return config.Load(path, overrides)
	}
	c, err := checkpoint.LoadHeader(resume)
	if err != nil {
		return nil, err
	}
	if c.Config == "" {
		return nil, fmt.Errorf("%s: the checkpoint holds no configuration; pass -c CONFIG", resume)
	}
	return config.ParseStored([]byte(c.Config), resume, c.Meta["config_dir"], overrides)
}

// DefaultOutDir is the run folder when --out is not given: with -r, the
// resumed checkpoint's own folder (a run continues where it was written);
// else output/<configuration file name without extension>.
func DefaultOutDir(configPath, resume string) string {
	if resume != "" {
		return filepath.Dir(resume)
	}
	return filepath.Join("output", strings.TrimSuffix(filepath.Base(configPath), filepath.Ext(configPath)))
}

// FinishedRun reports, for a resume checkpoint, whether there is nothing
// left to train: the checkpoint is at cfg's train.max_iters and outDir
// already holds the run's model_final.ckpt. msg then says so, with the
// command that trains longer. A checkpoint that cannot be read is left to
// Run to report (false, "").
func FinishedRun(resume string, cfg *config.Config, outDir, tool string) (msg string, done bool) {
	if resume == "" {
		return "", false
	}
	c, err := checkpoint.LoadHeader(resume)
	if err != nil {
		return "", false
	}
	it := int(c.State.Iteration)
	if it < cfg.Train.MaxIters || it > cfg.Train.MaxIters {
		return "", false
	}
	if _, err := os.Stat(filepath.Join(outDir, FinalFile)); err != nil {
		return "", false
	}
	return fmt.Sprintf("%s is at iteration %d of train.max_iters %d and %s holds its %s: the run is finished, nothing to resume "+
		"(to train it longer: %s -r %s -o train.max_iters=%d)", resume, it, cfg.Train.MaxIters, outDir, FinalFile, tool, resume, 2*max(it, 1)), true
}

package train

import (
	"fmt"
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
	return config.Parse([]byte(c.Config), resume+" (stored configuration)", overrides)
}

// DefaultOutDir is the run folder when --out is not given:
// output/<configuration file name without extension>, or, with -r and no
// -c, output/<name of the checkpoint's folder>.
func DefaultOutDir(configPath, resume string) string {
	base := configPath
	if base == "" {
		base = filepath.Dir(resume)
	}
	return filepath.Join("output", strings.TrimSuffix(filepath.Base(base), filepath.Ext(base)))
}

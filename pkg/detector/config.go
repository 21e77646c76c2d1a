package detector

import (
	"errors"
	"fmt"
	"os"

	"yolodistill/pkg/checkpoint"
	"yolodistill/pkg/config"
)

// NoConfigError is LoadConfig's error when no configuration file was given
// and the weights carry none: a URL, a folder, or a file that is not our
// checkpoint. The tools report it as a usage error (give -c).
type NoConfigError struct {
	Weights string
	Why     string
}

// IsUsage makes it a usage error (exit 2) for pkg/cli.
func (e *NoConfigError) IsUsage() bool { return true }

func (e *NoConfigError) Error() string {
	return fmt.Sprintf("no -c CONFIG, and --weights %s carries no configuration (%s): give -c CONFIG", e.Weights, e.Why)
}

// LoadConfig returns the configuration a tool runs a model with: the file
// at path with the -o overrides, or, when path is "", the configuration
// stored in the checkpoint at weights (the one its training run used), with
// the overrides applied to it. A checkpoint holds its whole configuration,
// so `detect-eval --weights RUN/model_final.ckpt` needs no -c. Weights that
// carry no configuration (a URL, a PaddleDetection folder, another
// framework's file, a checkpoint without one) give a *NoConfigError; a
// corrupt checkpoint gives its own error. The stored configuration's Path
// is "WEIGHTS (stored configuration)".
func LoadConfig(path, weights string, overrides []string) (*config.Config, error) {
	if path != "" {
		return config.Load(path, overrides)
	}
	if weights == "" {
		return nil, &NoConfigError{Weights: `""`, Why: "no weights given"}
	}
	if checkpoint.IsURL(weights) {
		return nil, &NoConfigError{Weights: weights, Why: "a URL: the configuration is read from a local checkpoint only"}
	}
	st, err := os.Stat(weights)
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return nil, &NoConfigError{Weights: weights, Why: "a folder of weights, not our checkpoint"}
	}
	c, err := checkpoint.LoadHeader(weights)
	if err != nil {
		if errors.Is(err, checkpoint.ErrNotCheckpoint) {
			return nil, &NoConfigError{Weights: weights, Why: "not a yolodistill checkpoint: another framework's weights?"}
		}
		return nil, err
	}
	if c.Config == "" {
		return nil, &NoConfigError{Weights: weights, Why: "the checkpoint holds no configuration"}
	}
	return config.ParseStored([]byte(c.Config), weights, c.Meta["config_dir"], overrides)
}

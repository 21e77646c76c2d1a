package train

import (
	"fmt"

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

package detectortest

import (
	"path/filepath"
	"testing"

	"yolodistill/pkg/checkpoint"
	"yolodistill/pkg/config"
	"yolodistill/pkg/detector"
)

// Checkpoint writes the freshly initialised detector of the configuration
// at cfgPath (with overrides) to dir/name and returns the path and the
// configuration.
func Checkpoint(t testing.TB, dir, name, cfgPath string, overrides ...string) (string, *config.Config) {
	t.Helper()
	cfg, err := config.Load(cfgPath, overrides)
	if err != nil {
		t.Fatal(err)
	}
	d, err := detector.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := checkpoint.Save(p, d.ToCheckpoint()); err != nil {
		t.Fatal(err)
	}
	return p, cfg
}

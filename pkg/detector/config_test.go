package detector

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestLoadConfigWithoutConfigFile(t *testing.T) {
	dir := t.TempDir()
	foreign := filepath.Join(dir, "w.pth")
	if err := os.WriteFile(foreign, []byte("PK\x03\x04 not ours"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{foreign, dir, "https://example.com/w.ckpt"} {
		_, err := LoadConfig("", w, nil)
		var nc *NoConfigError
		if !errors.As(err, &nc) || !nc.IsUsage() {
			t.Errorf("LoadConfig(\"\", %s): %v, want a *NoConfigError (usage)", w, err)
		}
	}
	if _, err := LoadConfig("", filepath.Join(dir, "missing.ckpt"), nil); err == nil || errors.As(err, new(*NoConfigError)) {
		t.Errorf("a missing checkpoint: %v, want the file error", err)
	}
}

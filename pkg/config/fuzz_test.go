package config

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse: arbitrary text never panics; what loads has a canonical form
// that loads to the same canonical form.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(presetDir, "*.yml"))
	fx, _ := filepath.Glob(filepath.Join(fixtureDir, "*.yml"))
	for _, p := range append(files, fx...) {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b, "train.base_lr=0.01")
		}
	}
	f.Add([]byte("model: &m {backbone: resnet18}\ndistill: *m\n"), "model.anchors.0=[1, 2]")
	f.Add([]byte("train: {milestones: [1e3, 2e3]}"), "distill.pairs=[{student: a, teacher: b}]")
	f.Fuzz(func(t *testing.T, src []byte, override string) {
		c, err := Parse(src, "fuzz.yml", []string{override})
		if err != nil {
			return
		}
		y := c.YAML()
		c2, err := Parse(y, "canonical", nil)
		if err != nil {
			t.Fatalf("canonical form does not load: %v\n%s", err, y)
		}
		if string(c2.YAML()) != string(y) {
			t.Fatalf("canonical form not stable:\n%s", y)
		}
	})
}

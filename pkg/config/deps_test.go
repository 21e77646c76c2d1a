package config

import (
	"os/exec"
	"strings"
	"testing"
)

// The configuration package stays engine-free: tools that only read
// configurations must not pull in gorgonia.
func TestNoEngineDependency(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list unavailable: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "gorgonia.org/") {
			t.Errorf("pkg/config depends on %s", dep)
		}
	}
}

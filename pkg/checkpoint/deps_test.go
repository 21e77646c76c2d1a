package checkpoint

import (
	"os/exec"
	"strings"
	"testing"
)

// The checkpoint package stays engine-free: tools that only read
// checkpoints must not pull in gorgonia.
func TestNoEngineDependency(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list unavailable: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "gorgonia.org/") {
			t.Errorf("pkg/checkpoint depends on %s", dep)
		}
	}
}

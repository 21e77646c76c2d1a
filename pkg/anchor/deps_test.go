package anchor

import (
	"os/exec"
	"strings"
	"testing"
)

// The anchor package imports the standard library only (see doc.go).
func TestStandardLibraryOnly(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Skipf("go list unavailable: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep != "yolodistill/pkg/anchor" {
			t.Errorf("pkg/anchor depends on %s", dep)
		}
	}
}

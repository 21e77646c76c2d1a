//go:build linux

package tools_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestHelpExamples: every tool's --help (on stderr, exit 0) ends its
// description with "Examples:" and at least one command line of that tool;
// each example's flags are the tool's own (the example parses: kong reads
// every flag before it acts on --help, so an unknown flag is exit 2), and
// the repository files it names exist.
func TestHelpExamples(t *testing.T) {
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	tools := []string{"dataset", "detect-train", "teacher-dump", "student-train", "detect-eval", "detect-infer", "model-inspect", "detect-export"}
	run := func(args ...string) (int, string, string) {
		c := exec.Command(filepath.Join(binDir, args[0]), args[1:]...)
		c.Dir = ".."
		var out, errb bytes.Buffer
		c.Stdout, c.Stderr = &out, &errb
		c.Run()
		if c.ProcessState == nil {
			t.Fatalf("%s did not start", args[0])
		}
		return c.ProcessState.ExitCode(), out.String(), errb.String()
	}
	for _, tool := range tools {
		t.Run(tool, func(t *testing.T) {
			code, stdout, stderr := run(tool, "--help")
			if code != 0 || stdout != "" {
				t.Fatalf("--help: exit %d, stdout %q", code, stdout)
			}
			_, after, ok := strings.Cut(stderr, "\nExamples:\n")
			if !ok {
				t.Fatalf("--help has no Examples:\n%s", stderr)
			}
			var examples []string
			for _, line := range strings.Split(strings.TrimLeft(after, "\n"), "\n") {
				if strings.TrimSpace(line) == "" {
					break
				}
				examples = append(examples, strings.TrimSpace(line))
			}
			if len(examples) == 0 {
				t.Fatalf("no example under Examples:\n%s", stderr)
			}
			for _, ex := range examples {
				args := strings.Fields(ex)
				if args[0] != tool {
					t.Errorf("example %q is not a %s command", ex, tool)
					continue
				}
				for _, a := range args {
					if strings.HasPrefix(a, "pipelines/") {
						if _, err := os.Stat(filepath.Join("..", a)); err != nil {
							t.Errorf("example %q: %v", ex, err)
						}
					}
				}
				if code, _, stderr := run(append(args, "--help")...); code != 0 {
					t.Errorf("example %q does not parse: exit %d\n%s", ex, code, stderr)
				}
			}
		})
	}
}

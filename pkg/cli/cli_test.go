package cli

import (
	"bytes"
	"strings"
	"testing"
)

type grammar struct {
	Config string `short:"c" required:"" help:"Config file."`
	Size   int    `default:"320" help:"Input size."`
}

func TestParse(t *testing.T) {
	cases := []struct {
		name     string
		args     []string
		code     int
		done     bool
		inStderr string
	}{
		{"ok", []string{"-c", "x.yml"}, 0, false, ""},
		{"help", []string{"--help"}, 0, true, "Input size."},
		{"missing flag", []string{}, ExitUsage, true, "missing flags"},
		{"unknown flag", []string{"-c", "a", "--nope"}, ExitUsage, true, "unknown flag"},
		{"bad type", []string{"-c", "a", "--size", "x"}, ExitUsage, true, "--size"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var g grammar
			var stderr bytes.Buffer
			_, code, done := Parse("tool", "A tool.", &g, tc.args, &stderr)
			if code != tc.code || done != tc.done {
				t.Fatalf("code %d done %v, want %d %v; stderr:\n%s", code, done, tc.code, tc.done, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.inStderr) {
				t.Fatalf("stderr lacks %q:\n%s", tc.inStderr, stderr.String())
			}
		})
	}
}

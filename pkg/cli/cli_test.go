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

func TestVersion(t *testing.T) {
	for _, build := range []string{"", "sgemm x, kernels y"} {
		var g grammar
		var stderr bytes.Buffer
		_, code, done := ParseVersion("tool", "A tool.", build, &g, []string{"--version"}, &stderr)
		want := "yolodistill tool (go"
		if build != "" {
			want = ", " + build + ")"
		}
		if code != 0 || !done || !strings.Contains(stderr.String(), want) || strings.Count(stderr.String(), "\n") != 1 {
			t.Errorf("build %q: code %d done %v stderr %q, want exit 0 and one line with %q", build, code, done, stderr.String(), want)
		}
	}
}

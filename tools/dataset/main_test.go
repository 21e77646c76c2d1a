package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"yolodistill/pkg/cli/clitest"
	"yolodistill/pkg/dataset"
)

// tool runs the tool in process (clitest.Run) and returns its exit code and
// streams.
func tool(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	r := clitest.Run(t, run, args...)
	return r.Code, r.Stdout, r.Stderr
}

const bccd = "../../../shared/datasets/bccd"

func needBCCD(t *testing.T) {
	if _, err := os.Stat(filepath.Join(bccd, "Annotations")); err != nil {
		t.Skipf("BCCD not found at %s; skipping", bccd)
	}
}

// smallVOC writes a VOC folder of three 32x24 PNG images with one "a" and
// one "b" object each; the second image's XML is edited by mutate when given.
func smallVOC(t *testing.T, mutate func(xml string) string) string {
	t.Helper()
	root := t.TempDir()
	var list strings.Builder
	for i := 0; i < 3; i++ {
		id := fmt.Sprintf("im%d", i)
		img := dataset.NewImage(32, 24)
		for k := range img.Pix {
			img.Pix[k] = uint8(k * (i + 3))
		}
		var b bytes.Buffer
		if err := dataset.EncodePNG(&b, img); err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(root, "JPEGImages", id+".png"), b.String())
		x := fmt.Sprintf(`<annotation>
	<filename>%s.png</filename>
	<size><width>32</width><height>24</height><depth>3</depth></size>
	<object><name>a</name><difficult>0</difficult><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>10</xmax><ymax>12</ymax></bndbox></object>
	<object><name>b</name><difficult>1</difficult><bndbox><xmin>15</xmin><ymin>5</ymin><xmax>32</xmax><ymax>24</ymax></bndbox></object>
</annotation>
`, id)
		if i == 1 && mutate != nil {
			x = mutate(x)
		}
		write(t, filepath.Join(root, "Annotations", id+".xml"), x)
		list.WriteString(id + "\n")
	}
	write(t, filepath.Join(root, "ImageSets", "Main", "trainval.txt"), list.String())
	return root
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestUsage(t *testing.T) {
	root := smallVOC(t, nil)
	cases := []struct {
		name     string
		args     []string
		code     int
		inStderr string
	}{
		{"no command", nil, 2, "expected one of"},
		{"no path", []string{"check"}, 2, `expected "<path>"`},
		{"bad format", []string{"check", "--format", "yolo", root}, 2, "--format"},
		{"bad images", []string{"check", "--images", "some", root}, 2, "--images"},
		{"split with coco", []string{"check", "--format", "coco", "--split", "x", root}, 2, "--split applies to VOC only"},
		{"missing path", []string{"check", filepath.Join(root, "nope")}, 1, "no such file"},
		{"not a dataset", []string{"check", t.TempDir()}, 1, "give --format"},
		{"convert without --to", []string{"convert", "--from", "voc", root, filepath.Join(t.TempDir(), "o")}, 2, "--to"},
		{"convert bad --images", []string{"convert", "--from", "voc", "--to", "coco", "--images", "move", root, "o"}, 2, "--images"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := clitest.Run(t, run, tc.args...)
			if r.Code != tc.code || !strings.Contains(r.Stderr, tc.inStderr) || r.Stdout != "" {
				t.Fatalf("exit %d (want %d), stdout %q, stderr:\n%s", r.Code, tc.code, r.Stdout, r.Stderr)
			}
		})
	}
}

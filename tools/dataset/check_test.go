package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"yolodistill/pkg/cli/clitest"
	"yolodistill/pkg/dataset"
)

// TestCheckBCCDGolden: `dataset check` on BCCD exits 0 (warnings only), and
// stdout is testdata/check_bccd.golden (go test -update rewrites it).
func TestCheckBCCDGolden(t *testing.T) {
	needBCCD(t)
	r := clitest.Run(t, run, "check", bccd)
	if r.Code != 0 || r.Stderr != "" {
		t.Fatalf("exit %d, stderr %q", r.Code, r.Stderr)
	}
	clitest.Golden(t, filepath.Join("testdata", "check_bccd.golden"), r.Stdout)
	// Independent of the golden file: the malformed boxes by file, and the counts.
	for _, s := range []string{
		"bccd/Annotations/BloodImage_00338.xml:158: warning: object 12: box [503,336,504,337) is only 1x1 pixels",
		"bccd/Annotations/BloodImage_00343.xml:50: warning: object 3: box [180,328,181,329) is only 1x1 pixels",
		"voc, 364 images usable, 4888 boxes, 3 classes [Platelets 361, RBC 4155, WBC 372]; 0 errors, 9 warnings",
	} {
		if !strings.Contains(r.Stdout, s) {
			t.Errorf("stdout lacks %q", s)
		}
	}
}

func TestCheckJSON(t *testing.T) {
	needBCCD(t)
	res := clitest.Run(t, run, "check", "--json", "--images", "header", "--split", "test", bccd)
	if res.Code != 0 || res.Stderr != "" {
		t.Fatalf("exit %d, stderr %q", res.Code, res.Stderr)
	}
	var r dataset.CheckReport
	if err := json.Unmarshal([]byte(res.Stdout), &r); err != nil {
		t.Fatal(err)
	}
	if r.Images != 72 || r.Format != "voc" || r.Errors != 0 || len(r.Classes) != 3 {
		t.Fatalf("report %+v", r)
	}
	sum := 0
	for _, n := range r.PerClass {
		sum += n
	}
	if sum != r.Boxes || r.Boxes == 0 {
		t.Fatalf("boxes %d, per class %v", r.Boxes, r.PerClass)
	}
}

func TestCheckErrors(t *testing.T) {
	root := smallVOC(t, func(x string) string {
		x = strings.Replace(x, "<filename>im1.png", "<filename>../../etc/im1.png", 1)
		return x
	})
	// A truncated image and a box past the border in the others.
	p := filepath.Join(root, "JPEGImages", "im2.png")
	data, _ := os.ReadFile(p)
	write(t, p, string(data[:len(data)/2]))
	x0 := filepath.Join(root, "Annotations", "im0.xml")
	data, _ = os.ReadFile(x0)
	write(t, x0, strings.Replace(string(data), "<xmax>10</xmax>", "<xmax>40</xmax>", 1))

	r := clitest.Run(t, run, "check", root)
	if r.Code != 1 || r.Stderr != "" {
		t.Fatalf("exit %d (want 1), stderr %q", r.Code, r.Stderr)
	}
	for _, s := range []string{
		"Annotations/im0.xml:4: warning: object 0: box [0,1,40,12) crosses the 32x24 image border; clipped to [0,1,32,12) (box-clipped)",
		`Annotations/im1.xml: error: <filename> "../../etc/im1.png" escapes the image folder`,
		"JPEGImages/im2.png: error: corrupt png: png: invalid format: not enough pixel data (image-corrupt)",
		"voc, 1 images usable, 2 boxes, 2 classes [a 1, b 1]; 2 errors, 1 warnings",
	} {
		if !strings.Contains(r.Stdout, s) {
			t.Errorf("stdout lacks %q:\n%s", s, r.Stdout)
		}
	}
	// --images header does not see the truncated data.
	r = clitest.Run(t, run, "check", "--images", "header", root)
	if r.Code != 1 || !strings.Contains(r.Stdout, "2 images usable") {
		t.Fatalf("header only: exit %d\n%s", r.Code, r.Stdout)
	}
	// Only warnings: exit 0.
	os.Remove(filepath.Join(root, "Annotations", "im1.xml"))
	os.Remove(filepath.Join(root, "Annotations", "im2.xml"))
	r = clitest.Run(t, run, "check", root)
	if r.Code != 0 || !strings.Contains(r.Stdout, "0 errors, 1 warnings") {
		t.Fatalf("warnings only: exit %d\n%s", r.Code, r.Stdout)
	}
}

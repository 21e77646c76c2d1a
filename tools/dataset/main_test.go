package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"yolodistill/pkg/dataset"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

func runTool(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
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

// TestCheckBCCDGolden: `dataset check` on BCCD exits 0 (warnings only), and
// stdout is testdata/check_bccd.golden (go test -update rewrites it).
func TestCheckBCCDGolden(t *testing.T) {
	needBCCD(t)
	code, stdout, stderr := runTool(t, "check", bccd)
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	golden := filepath.Join("testdata", "check_bccd.golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, []byte(stdout), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if stdout != string(want) {
		t.Errorf("stdout differs from %s:\n%s", golden, stdout)
	}
	// Independent of the golden file: the malformed boxes by file, and the counts.
	for _, s := range []string{
		"bccd/Annotations/BloodImage_00338.xml:158: warning: object 12: box [503,336,504,337) is only 1x1 pixels",
		"bccd/Annotations/BloodImage_00343.xml:50: warning: object 3: box [180,328,181,329) is only 1x1 pixels",
		"voc, 364 images usable, 4888 boxes, 3 classes [Platelets 361, RBC 4155, WBC 372]; 0 errors, 9 warnings",
	} {
		if !strings.Contains(stdout, s) {
			t.Errorf("stdout lacks %q", s)
		}
	}
}

func TestCheckJSON(t *testing.T) {
	needBCCD(t)
	code, stdout, stderr := runTool(t, "check", "--json", "--images", "header", "--split", "test", bccd)
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	var r checkReport
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
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

	code, stdout, stderr := runTool(t, "check", root)
	if code != 1 || stderr != "" {
		t.Fatalf("exit %d (want 1), stderr %q", code, stderr)
	}
	for _, s := range []string{
		"Annotations/im0.xml:4: warning: object 0: box [0,1,40,12) crosses the 32x24 image border; clipped to [0,1,32,12) (box-clipped)",
		`Annotations/im1.xml: error: <filename> "../../etc/im1.png" escapes the image folder`,
		"JPEGImages/im2.png: error: corrupt png: png: invalid format: not enough pixel data (image-corrupt)",
		"voc, 1 images usable, 2 boxes, 2 classes [a 1, b 1]; 2 errors, 1 warnings",
	} {
		if !strings.Contains(stdout, s) {
			t.Errorf("stdout lacks %q:\n%s", s, stdout)
		}
	}
	// --images header does not see the truncated data.
	code, stdout, _ = runTool(t, "check", "--images", "header", root)
	if code != 1 || !strings.Contains(stdout, "2 images usable") {
		t.Fatalf("header only: exit %d\n%s", code, stdout)
	}
	// Only warnings: exit 0.
	os.Remove(filepath.Join(root, "Annotations", "im1.xml"))
	os.Remove(filepath.Join(root, "Annotations", "im2.xml"))
	code, stdout, _ = runTool(t, "check", root)
	if code != 0 || !strings.Contains(stdout, "0 errors, 1 warnings") {
		t.Fatalf("warnings only: exit %d\n%s", code, stdout)
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
			code, stdout, stderr := runTool(t, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.inStderr) || stdout != "" {
				t.Fatalf("exit %d (want %d), stdout %q, stderr:\n%s", code, tc.code, stdout, stderr)
			}
		})
	}
}

func TestConvertRoundTrip(t *testing.T) {
	root := smallVOC(t, nil)
	tmp := t.TempDir()
	coco, voc := filepath.Join(tmp, "coco"), filepath.Join(tmp, "voc")
	if code, stdout, stderr := runTool(t, "convert", "--from", "voc", "--to", "coco", root, coco); code != 0 || stdout != "" {
		t.Fatalf("voc->coco exit %d, stderr %s", code, stderr)
	}
	if code, _, stderr := runTool(t, "convert", "--from", "coco", "--to", "voc", "--images", "copy", coco, voc); code != 0 {
		t.Fatalf("coco->voc exit %d, stderr %s", code, stderr)
	}
	a, ps := dataset.ReadVOC(root, dataset.VOCOptions{Images: dataset.ImageDecode})
	b, ps2 := dataset.ReadVOC(voc, dataset.VOCOptions{Images: dataset.ImageDecode})
	if len(ps)+len(ps2) != 0 || !reflect.DeepEqual(a.Samples, b.Samples) || !reflect.DeepEqual(a.Classes, b.Classes) {
		t.Fatalf("round trip differs: %v %v\n%+v\n%+v", ps, ps2, a.Samples, b.Samples)
	}
	// XML files are identical after a second round (the writer is a fixed point).
	voc2 := filepath.Join(tmp, "voc2")
	if code, _, stderr := runTool(t, "convert", "--from", "voc", "--to", "voc", "--images", "none", voc, voc2); code != 0 {
		t.Fatalf("voc->voc exit %d: %s", code, stderr)
	}
	for _, id := range []string{"im0", "im1", "im2"} {
		x1, _ := os.ReadFile(filepath.Join(voc, "Annotations", id+".xml"))
		x2, _ := os.ReadFile(filepath.Join(voc2, "Annotations", id+".xml"))
		if len(x1) == 0 || !bytes.Equal(x1, x2) {
			t.Fatalf("%s.xml differs", id)
		}
	}
	// OUT exists and is not empty: refused, untouched.
	code, _, stderr := runTool(t, "convert", "--from", "voc", "--to", "coco", root, voc)
	if code != 1 || !strings.Contains(stderr, "not empty; refusing") {
		t.Fatalf("existing OUT: exit %d, %s", code, stderr)
	}
	// No temporary folders are left beside the outputs.
	ents, _ := os.ReadDir(tmp)
	if len(ents) != 3 {
		t.Fatalf("leftovers in %s: %v", tmp, ents)
	}
}

func TestConvertRefusesErrors(t *testing.T) {
	root := smallVOC(t, func(x string) string { return strings.Replace(x, "<width>32</width>", "<width>33</width>", 1) })
	out := filepath.Join(t.TempDir(), "out")
	code, stdout, stderr := runTool(t, "convert", "--from", "voc", "--to", "coco", root, out)
	if code != 1 || stdout != "" || !strings.Contains(stderr, "size-mismatch") || !strings.Contains(stderr, "nothing written") {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("OUT was created: %v", err)
	}
	code, _, stderr = runTool(t, "convert", "--from", "voc", "--to", "coco", "--skip-bad", root, out)
	if code != 0 || !strings.Contains(stderr, "wrote "+out+" (coco): 2 images, 4 boxes, 2 classes") {
		t.Fatalf("--skip-bad: exit %d, stderr:\n%s", code, stderr)
	}
	ds, ps := dataset.ReadCOCO(out, dataset.COCOOptions{Images: dataset.ImageDecode})
	if len(ps) != 0 || len(ds.Samples) != 2 {
		t.Fatalf("COCO output: %d samples, %v", len(ds.Samples), ps)
	}
}

func TestConvertBCCD(t *testing.T) {
	needBCCD(t)
	tmp := t.TempDir()
	coco, voc := filepath.Join(tmp, "coco"), filepath.Join(tmp, "voc")
	if code, _, stderr := runTool(t, "convert", "--from", "voc", "--to", "coco", "--split", "trainval,test", bccd, coco); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	code, stdout, stderr := runTool(t, "check", "--images", "header", coco)
	if code != 0 || !strings.Contains(stdout, "coco, 364 images usable, 4888 boxes") {
		t.Fatalf("check of the COCO output: exit %d\n%s%s", code, stdout, stderr)
	}
	if code, _, stderr := runTool(t, "convert", "--from", "coco", "--to", "voc", "--images", "symlink", coco, voc); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	a, _ := dataset.ReadVOC(bccd, dataset.VOCOptions{Split: "trainval,test", Images: dataset.ImageNone})
	b, ps := dataset.ReadVOC(voc, dataset.VOCOptions{Split: "trainval", Images: dataset.ImageHeader})
	if ps.Count(dataset.Error) != 0 || !reflect.DeepEqual(a.Samples, b.Samples) {
		t.Fatalf("BCCD VOC->COCO->VOC differs (%v)", ps.Err())
	}
}

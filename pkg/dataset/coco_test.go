package dataset

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"yolodistill/pkg/box"
)

// cocoSmall has category ids with gaps (3, 7, 1 listed out of order), a crowd
// annotation, an area, and one annotation per line so that lines are known:
// annotation id 10 is on line 8, id 11 on line 9, id 12 on line 10.
const cocoSmall = `{"info": {"x": 1},
"images": [
{"id": 5, "file_name": "a.png", "width": 40, "height": 30},
{"id": 9, "file_name": "sub/b.png", "width": 20, "height": 10}
],
"licenses": [],
"annotations": [
{"id": 10, "image_id": 5, "category_id": 7, "bbox": [1, 2, 10, 5], "area": 33.5, "iscrowd": 0},
{"id": 11, "image_id": 5, "category_id": 3, "bbox": [0.5, 0, 4.25, 30], "area": 0, "iscrowd": 1},
{"id": 12, "image_id": 9, "category_id": 1, "bbox": [15, 5, 10, 10], "area": 50, "iscrowd": 0}
],
"categories": [{"id": 3, "name": "dog"}, {"id": 7, "name": "zebra"}, {"id": 1, "name": "cat"}]
}
`

func TestParseCOCO(t *testing.T) {
	ds, ps := ParseCOCO([]byte(cocoSmall), "x.json", COCOOptions{})
	// Annotation 12 is clipped at the border of its 20x10 image.
	if len(ps) != 1 || !hasProblem(ps, Warning, KindBoxClipped, "x.json", 10) {
		t.Fatalf("problems: %v", ps)
	}
	if !reflect.DeepEqual(ds.Classes, []string{"cat", "dog", "zebra"}) {
		t.Fatalf("classes %v (want sorted by category id)", ds.Classes)
	}
	want := []Sample{
		{ID: 5, Name: "a.png", File: "a.png", Width: 40, Height: 30, Objects: []Object{
			{Box: box.Box{X0: 1, Y0: 2, X1: 11, Y1: 7}, Label: 2, Area: 33.5, AnnID: 10},
			{Box: box.Box{X0: 0.5, Y0: 0, X1: 4.75, Y1: 30}, Label: 1, Crowd: true, AnnID: 11},
		}},
		{ID: 9, Name: "sub/b.png", File: "sub/b.png", Width: 20, Height: 10, Objects: []Object{
			{Box: box.Box{X0: 15, Y0: 5, X1: 20, Y1: 10}, Label: 0, Area: 50, AnnID: 12},
		}},
	}
	if !reflect.DeepEqual(ds.Samples, want) {
		t.Fatalf("samples\n%+v\nwant\n%+v", ds.Samples, want)
	}
	// Given classes decide the labels.
	ds2, ps := ParseCOCO([]byte(cocoSmall), "x.json", COCOOptions{Classes: []string{"zebra", "dog", "cat"}})
	if ds2.Samples[0].Objects[0].Label != 0 || ds2.Samples[1].Objects[0].Label != 2 || ps.Count(Error) != 0 {
		t.Fatalf("given classes: %+v %v", ds2.Samples, ps)
	}
}

func TestParseCOCOProblems(t *testing.T) {
	cases := []struct {
		name    string
		old     string // replaced in cocoSmall by new
		new     string
		sev     Severity
		kind    string
		line    int
		samples int
	}{
		{"syntax error", `"bbox": [1, 2, 10, 5],`, `"bbox": [1, 2, 10 5],`, Error, KindSyntax, 8, 0},
		{"truncated", "\"categories\"", "", Error, KindSyntax, 0, 0},
		{"not an object", "{\"info\"", "[\"info\"", Error, KindSyntax, 1, 0},
		{"dotdot file name", `"a.png"`, `"../../a.png"`, Error, KindPathEscape, 3, 1},
		{"absolute file name", `"a.png"`, `"/etc/passwd"`, Error, KindPathEscape, 3, 1},
		{"duplicate image id", `{"id": 9,`, `{"id": 5,`, Error, KindDuplicateID, 4, 0},
		{"duplicate annotation id", `{"id": 11,`, `{"id": 10,`, Error, KindDuplicateID, 9, 1},
		{"duplicate category id", `{"id": 7, "name": "zebra"}`, `{"id": 3, "name": "zebra"}`, Error, KindDuplicateID, 12, 1},
		{"unknown category", `"category_id": 1,`, `"category_id": 2,`, Error, KindUnknownClass, 10, 1},
		{"unknown image", `"image_id": 9,`, `"image_id": 8,`, Error, KindBadField, 10, 2},
		{"bbox of 3", `[15, 5, 10, 10]`, `[15, 5, 10]`, Error, KindBadField, 10, 1},
		{"string id", `{"id": 12,`, `{"id": "12",`, Error, KindBadField, 10, 1},
		{"fractional image id", `{"id": 9,`, `{"id": 9.5,`, Error, KindBadField, 4, 1},
		{"zero-width box", `[1, 2, 10, 5]`, `[1, 2, 0, 5]`, Warning, KindBoxDropped, 8, 2},
		{"negative size", `"width": 20`, `"width": -20`, Error, KindBadField, 4, 1},
		{"iscrowd 2", `"iscrowd": 1}`, `"iscrowd": 2}`, Error, KindBadField, 9, 1},
		{"missing file_name", `"file_name": "sub/b.png", `, ``, Error, KindBadField, 4, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(cocoSmall, tc.old) {
				t.Fatalf("fixture lacks %q", tc.old)
			}
			data := strings.Replace(cocoSmall, tc.old, tc.new, 1)
			if tc.name == "truncated" {
				data = cocoSmall[:len(cocoSmall)/2]
			}
			ds, ps := ParseCOCO([]byte(data), "x.json", COCOOptions{})
			if !hasProblem(ps, tc.sev, tc.kind, "x.json", tc.line) {
				t.Fatalf("no %s %s at line %d; got:\n%v", tc.sev, tc.kind, tc.line, ps)
			}
			if len(ds.Samples) != tc.samples {
				t.Fatalf("%d samples, want %d; %v", len(ds.Samples), tc.samples, ps)
			}
		})
	}
}

func TestReadCOCOImages(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "annotations.json"), []byte(strings.Replace(cocoSmall, `"width": 20, "height": 10`, `"width": 21, "height": 10`, 1)))
	writeFile(t, filepath.Join(dir, "images", "a.png"), pngBytes(t, testPattern(40, 30).RGBA()))
	writeFile(t, filepath.Join(dir, "images", "sub", "b.png"), pngBytes(t, testPattern(20, 10).RGBA()))
	ds, ps := ReadCOCO(dir, COCOOptions{Images: ImageDecode})
	if !hasProblem(ps, Error, KindSizeMismatch, "images/sub/b.png", 0) || len(ds.Samples) != 1 || ds.Samples[0].ID != 5 {
		t.Fatalf("%d samples; %v", len(ds.Samples), ps)
	}
	// Without sizes in the JSON, they come from the images (with a warning).
	noSize := strings.NewReplacer(`, "width": 40, "height": 30`, "", `, "width": 20, "height": 10`, "").Replace(cocoSmall)
	writeFile(t, filepath.Join(dir, "annotations.json"), []byte(noSize))
	ds, ps = ReadCOCO(filepath.Join(dir, "annotations.json"), COCOOptions{ImageRoot: filepath.Join(dir, "images")})
	if ps.Count(Error) != 0 || len(ds.Samples) != 2 || ds.Samples[1].Width != 20 || ds.Samples[1].Objects[0].Box.X1 != 20 {
		t.Fatalf("sizes from images: %+v %v", ds.Samples, ps)
	}
	if !hasProblem(ps, Warning, KindBoxClipped, "annotations.json", 10) {
		t.Fatalf("clip after size from image not reported: %v", ps)
	}
	// ParseCOCO alone cannot use images without a size.
	if ds, ps := ParseCOCO([]byte(noSize), "x.json", COCOOptions{}); len(ds.Samples) != 0 || ps.Count(Error) != 2 {
		t.Fatalf("ParseCOCO without sizes: %d samples, %v", len(ds.Samples), ps)
	}
}

func TestCOCOWriteRead(t *testing.T) {
	ds, ps := ParseCOCO([]byte(cocoSmall), "x.json", COCOOptions{})
	if ps.Count(Error) != 0 {
		t.Fatal(ps)
	}
	data, err := MarshalCOCO(ds)
	if err != nil {
		t.Fatal(err)
	}
	back, ps := ParseCOCO(data, "y.json", COCOOptions{})
	if len(ps) != 0 {
		t.Fatalf("problems reading our own output: %v", ps)
	}
	// Area 0 becomes the box area; everything else is kept.
	ds.Samples[0].Objects[1].Area = ds.Samples[0].Objects[1].Box.Area()
	if !reflect.DeepEqual(back.Samples, ds.Samples) || !reflect.DeepEqual(back.Classes, ds.Classes) {
		t.Fatalf("round trip\n%+v\nwant\n%+v", back.Samples, ds.Samples)
	}
	again, _ := MarshalCOCO(back)
	if !bytes.Equal(again, data) {
		t.Fatal("MarshalCOCO is not deterministic / not a fixed point")
	}
}

// roundTripVOC converts the VOC folder root to COCO and back to VOC (copying
// images) and checks the VOC read back equals the original read, sample by sample.
func roundTripVOC(t *testing.T, root string, opt VOCOptions) {
	t.Helper()
	orig, ps := ReadVOC(root, opt)
	if ps.Count(Error) != 0 {
		t.Fatal(ps.Err())
	}
	cocoDir := filepath.Join(t.TempDir(), "coco")
	if err := WriteCOCO(cocoDir, orig, COCOWriteOptions{Images: ImagesLink}); err != nil {
		t.Fatal(err)
	}
	mid, ps := ReadCOCO(cocoDir, COCOOptions{Classes: orig.Classes, Images: ImageHeader})
	if ps.Count(Error) != 0 {
		t.Fatal(ps.Err())
	}
	vocDir := filepath.Join(t.TempDir(), "voc")
	if err := WriteVOC(vocDir, mid, VOCWriteOptions{Split: "trainval", Images: ImagesCopy}); err != nil {
		t.Fatal(err)
	}
	back, ps := ReadVOC(vocDir, VOCOptions{Classes: orig.Classes, Split: "trainval", Images: ImageHeader})
	if ps.Count(Error) != 0 {
		t.Fatal(ps.Err())
	}
	if len(back.Samples) != len(orig.Samples) {
		t.Fatalf("%d samples back, want %d", len(back.Samples), len(orig.Samples))
	}
	for i := range orig.Samples {
		if !reflect.DeepEqual(back.Samples[i], orig.Samples[i]) {
			t.Fatalf("sample %d differs:\n%+v\n%+v", i, back.Samples[i], orig.Samples[i])
		}
	}
	// The images are the same bytes.
	for _, i := range []int{0, len(orig.Samples) - 1} {
		a, _ := os.ReadFile(filepath.Join(orig.ImageRoot, orig.Samples[i].File))
		b, _ := os.ReadFile(filepath.Join(back.ImageRoot, back.Samples[i].File))
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Fatalf("image %s differs after the round trip", orig.Samples[i].File)
		}
	}
	// Writing the read-back dataset again gives the same XML bytes.
	for _, i := range []int{0, len(orig.Samples) / 2} {
		x1, _ := MarshalVOCXML(&orig.Samples[i], orig.Classes)
		x2, err := os.ReadFile(filepath.Join(vocDir, "Annotations", VOCID(&back.Samples[i])+".xml"))
		if err != nil || !bytes.Equal(x1, x2) {
			t.Fatalf("XML of %s differs (%v)", back.Samples[i].Name, err)
		}
	}
}

func TestRoundTripVOCCOCOVOCSmall(t *testing.T) {
	root := makeVOC(t)
	// Add a truncated flag and a fractional-free odd box to cover every field.
	writeFile(t, filepath.Join(root, "Annotations", "img0.xml"), []byte(strings.Replace(
		vocXML("img0.jpg", 64, 48, []vocObj{{"cat", "1", "1", "64", "48", "1"}, {"dog", "7", "7", "7", "7", "0"}}),
		"<difficult>1</difficult>", "<difficult>1</difficult><truncated>1</truncated>", 1)))
	roundTripVOC(t, root, VOCOptions{Split: "trainval"})
}

func TestRoundTripVOCCOCOVOCBCCD(t *testing.T) {
	roundTripVOC(t, bccdRoot(t), VOCOptions{Split: "trainval,test"})
}

// TestParseCOCOVal2014 reads the shared 100-image COCO val2014 fixture: 100
// images, 839 annotations (9 crowd), 80 categories with ids 1..90 mapped to
// labels 0..79 (counted independently with Python's json module).
func TestParseCOCOVal2014(t *testing.T) {
	p := filepath.Join("..", "..", "..", "shared", "fixtures", "coco-eval", "instances_val2014_100.json")
	data, err := os.ReadFile(p)
	if err != nil {
		t.Skipf("COCO fixture not found (%v); skipping", err)
	}
	ds, ps := ParseCOCO(data, p, COCOOptions{})
	if ps.Count(Error) != 0 {
		t.Fatal(ps.Err())
	}
	crowd := 0
	for _, s := range ds.Samples {
		for _, o := range s.Objects {
			if o.Crowd {
				crowd++
			}
		}
	}
	if len(ds.Samples) != 100 || countObjects(ds) != 839 || crowd != 9 || len(ds.Classes) != 80 {
		t.Fatalf("%d images, %d boxes, %d crowd, %d classes", len(ds.Samples), countObjects(ds), crowd, len(ds.Classes))
	}
	if ds.Classes[0] != "person" || ds.Classes[79] != "toothbrush" {
		t.Fatalf("classes %q ... %q", ds.Classes[0], ds.Classes[79])
	}
	for _, p := range ps {
		if p.Kind != KindBoxTiny && p.Kind != KindBoxDuplicate {
			t.Errorf("unexpected %v", p)
		}
	}
	// Our writer keeps ids, areas and boxes of real COCO data.
	out, err := MarshalCOCO(ds)
	if err != nil {
		t.Fatal(err)
	}
	back, _ := ParseCOCO(out, "y.json", COCOOptions{})
	if !reflect.DeepEqual(back.Samples, ds.Samples) {
		t.Fatal("COCO -> COCO differs")
	}
}

// TestVOCLabelList: WriteVOC records the class order in label_list.txt and
// ReadVOC uses it when no classes are given, so COCO -> VOC keeps labels.
func TestVOCLabelList(t *testing.T) {
	ds, ps := ParseCOCO([]byte(cocoSmall), "x.json", COCOOptions{Classes: []string{"zebra", "dog", "cat", "unused"}})
	if ps.Count(Error) != 0 {
		t.Fatal(ps)
	}
	dir := filepath.Join(t.TempDir(), "voc")
	if err := WriteVOC(dir, ds, VOCWriteOptions{Images: ImagesNone}); err != nil {
		t.Fatal(err)
	}
	back, ps := ReadVOC(dir, VOCOptions{Images: ImageNone})
	if ps.Count(Error) != 0 || !reflect.DeepEqual(back.Classes, ds.Classes) {
		t.Fatalf("classes %v, want %v (%v)", back.Classes, ds.Classes, ps)
	}
	if back.Samples[0].Objects[0].Label != ds.Samples[0].Objects[0].Label {
		t.Fatal("labels moved")
	}
	writeFile(t, filepath.Join(dir, VOCLabelList), []byte("zebra\ndog\nzebra\ncat\n"))
	_, ps = ReadVOC(dir, VOCOptions{Images: ImageNone})
	if !hasProblem(ps, Error, KindDuplicateID, VOCLabelList, 3) {
		t.Fatalf("duplicate class not reported: %v", ps)
	}
}

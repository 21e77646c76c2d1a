package dataset

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"yolodistill/pkg/box"
)

// bccdRoot is the shared BCCD set, reached from the repository; tests that
// need it skip when it is absent.
func bccdRoot(t testing.TB) string {
	t.Helper()
	root := filepath.Join("..", "..", "..", "shared", "datasets", "bccd")
	if _, err := os.Stat(filepath.Join(root, "Annotations")); err != nil {
		t.Skipf("BCCD not found at %s (%v); skipping", root, err)
	}
	return root
}

// vocObj is one object of a hand-written test annotation, in VOC's own
// inclusive 1-based coordinates.
type vocObj struct {
	name                   string
	xmin, ymin, xmax, ymax string
	difficult              string
}

// vocXML writes a VOC annotation by hand (not with MarshalVOCXML, so reader
// tests do not depend on the writer). The first <object> is on line 9.
func vocXML(filename string, w, h int, objs []vocObj) string {
	var b strings.Builder
	fmt.Fprintf(&b, "<annotation>\n\t<folder>JPEGImages</folder>\n\t<filename>%s</filename>\n\t<size>\n\t\t<width>%d</width>\n\t\t<height>%d</height>\n\t\t<depth>3</depth>\n\t</size>\n", filename, w, h)
	for _, o := range objs {
		d := o.difficult
		if d == "" {
			d = "0"
		}
		fmt.Fprintf(&b, "\t<object>\n\t\t<name>%s</name>\n\t\t<difficult>%s</difficult>\n\t\t<bndbox><xmin>%s</xmin><ymin>%s</ymin><xmax>%s</xmax><ymax>%s</ymax></bndbox>\n\t</object>\n",
			o.name, d, o.xmin, o.ymin, o.xmax, o.ymax)
	}
	b.WriteString("</annotation>\n")
	return b.String()
}

// makeVOC writes a small VOC folder: 4 JPEG images of 64x48, ids img0..img3,
// split "trainval" listing all, two objects each (cat, dog).
func makeVOC(t testing.TB) string {
	t.Helper()
	root := t.TempDir()
	var list strings.Builder
	for i := 0; i < 4; i++ {
		id := fmt.Sprintf("img%d", i)
		writeFile(t, filepath.Join(root, "JPEGImages", id+".jpg"), jpegBytes(t, testPattern(64, 48)))
		objs := []vocObj{
			{name: "cat", xmin: "1", ymin: "1", xmax: "20", ymax: "10"},
			{name: "dog", xmin: fmt.Sprint(30 + i), ymin: "5", xmax: "64", ymax: "48", difficult: fmt.Sprint(i % 2)},
		}
		writeFile(t, filepath.Join(root, "Annotations", id+".xml"), []byte(vocXML(id+".jpg", 64, 48, objs)))
		list.WriteString(id + "\n")
	}
	writeFile(t, filepath.Join(root, "ImageSets", "Main", "trainval.txt"), []byte(list.String()))
	return root
}

func TestVOCCoordinates(t *testing.T) {
	// VOC inclusive 1-based -> half-open 0-based: X0 = xmin-1, X1 = xmax.
	cases := []struct {
		name string
		obj  vocObj
		want box.Box
	}{
		{"whole image", vocObj{"cat", "1", "1", "64", "48", ""}, box.Box{X0: 0, Y0: 0, X1: 64, Y1: 48}},
		{"one pixel", vocObj{"cat", "5", "6", "5", "6", ""}, box.Box{X0: 4, Y0: 5, X1: 5, Y1: 6}},
		{"fractional", vocObj{"cat", "10.5", "2", "20.25", "3", ""}, box.Box{X0: 9.5, Y0: 1, X1: 20.25, Y1: 3}},
		{"spaces", vocObj{"cat", " 3 ", "\n4", "7\t", "8", ""}, box.Box{X0: 2, Y0: 3, X1: 7, Y1: 8}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ann, ps := ParseVOCXML([]byte(vocXML("a.jpg", 64, 48, []vocObj{tc.obj})), "a.xml")
			if len(ps) != 0 || len(ann.Objects) != 1 {
				t.Fatalf("problems %v objects %d", ps, len(ann.Objects))
			}
			if got := ann.Objects[0].Box; got != tc.want {
				t.Fatalf("box %v want %v", got, tc.want)
			}
			if ann.Objects[0].Line != 9 {
				t.Fatalf("object line %d, want 9", ann.Objects[0].Line)
			}
			// The writer is the exact inverse.
			s := Sample{File: "a.jpg", Width: 64, Height: 48, Objects: []Object{{Box: tc.want}}}
			data, err := MarshalVOCXML(&s, []string{"cat"})
			if err != nil {
				t.Fatal(err)
			}
			back, ps := ParseVOCXML(data, "b.xml")
			if len(ps) != 0 || back.Objects[0].Box != tc.want {
				t.Fatalf("written and read back: %v %v", back.Objects, ps)
			}
		})
	}
}

func TestReadVOCSmall(t *testing.T) {
	root := makeVOC(t)
	ds, ps := ReadVOC(root, VOCOptions{Split: "trainval", Images: ImageDecode})
	if len(ps) != 0 {
		t.Fatalf("problems: %v", ps)
	}
	if !reflect.DeepEqual(ds.Classes, []string{"cat", "dog"}) {
		t.Fatalf("classes %v", ds.Classes)
	}
	if len(ds.Samples) != 4 {
		t.Fatalf("%d samples", len(ds.Samples))
	}
	s := ds.Samples[3]
	want := Sample{ID: 3, Name: "img3", File: "img3.jpg", Width: 64, Height: 48, Objects: []Object{
		{Box: box.Box{X0: 0, Y0: 0, X1: 20, Y1: 10}, Label: 0},
		{Box: box.Box{X0: 32, Y0: 4, X1: 64, Y1: 48}, Label: 1, Difficult: true},
	}}
	if !reflect.DeepEqual(s, want) {
		t.Fatalf("sample\n%+v\nwant\n%+v", s, want)
	}
	// Classes from the caller fix the labels.
	ds2, ps := ReadVOC(root, VOCOptions{Classes: []string{"dog", "cat", "bird"}})
	if len(ps) != 0 || ds2.Samples[0].Objects[0].Label != 1 || ds2.Samples[0].Objects[1].Label != 0 || len(ds2.Classes) != 3 {
		t.Fatalf("given classes: %v %+v", ps, ds2.Samples[0].Objects)
	}
}

// hasProblem reports whether ps holds a problem of kind and severity whose
// file ends with fileSuffix (and whose line is line, when line > 0).
func hasProblem(ps Problems, sev Severity, kind, fileSuffix string, line int) bool {
	for _, p := range ps {
		if p.Severity == sev && p.Kind == kind && strings.HasSuffix(filepath.ToSlash(p.File), fileSuffix) && (line == 0 || p.Line == line) {
			return true
		}
	}
	return false
}

func TestReadVOCCorrupted(t *testing.T) {
	ann := func(root, id string) string { return filepath.Join(root, "Annotations", id+".xml") }
	rewrite := func(t *testing.T, path, old, new string) {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(data), old) {
			t.Fatalf("%s lacks %q", path, old)
		}
		writeFile(t, path, []byte(strings.Replace(string(data), old, new, 1)))
	}
	cases := []struct {
		name    string
		opt     VOCOptions
		corrupt func(t *testing.T, root string)
		sev     Severity
		kind    string
		file    string // suffix of Problem.File
		line    int    // 0: any
		samples int    // samples left
		check   func(t *testing.T, ds *Dataset)
	}{
		{"truncated jpeg", VOCOptions{Images: ImageDecode}, func(t *testing.T, root string) {
			p := filepath.Join(root, "JPEGImages", "img1.jpg")
			data, _ := os.ReadFile(p)
			writeFile(t, p, data[:len(data)*2/3])
		}, Error, KindImageCorrupt, "JPEGImages/img1.jpg", 0, 3, nil},
		{"broken xml", VOCOptions{}, func(t *testing.T, root string) {
			rewrite(t, ann(root, "img2"), "<name>dog</name>", "<name>dog</nam>")
		}, Error, KindSyntax, "Annotations/img2.xml", 15, 3, nil},
		{"xml cut short", VOCOptions{}, func(t *testing.T, root string) {
			rewrite(t, ann(root, "img2"), "</annotation>\n", "")
		}, Error, KindSyntax, "Annotations/img2.xml", 0, 3, nil},
		{"dotdot file name", VOCOptions{}, func(t *testing.T, root string) {
			writeFile(t, filepath.Join(root, "secret.jpg"), jpegBytes(t, testPattern(64, 48)))
			rewrite(t, ann(root, "img0"), "<filename>img0.jpg", "<filename>../secret.jpg")
		}, Error, KindPathEscape, "Annotations/img0.xml", 0, 3, nil},
		{"absolute file name", VOCOptions{}, func(t *testing.T, root string) {
			rewrite(t, ann(root, "img0"), "<filename>img0.jpg", "<filename>/etc/passwd")
		}, Error, KindPathEscape, "Annotations/img0.xml", 0, 3, nil},
		{"symlink out of the root", VOCOptions{}, func(t *testing.T, root string) {
			out := filepath.Join(t.TempDir(), "outside.jpg")
			writeFile(t, out, jpegBytes(t, testPattern(64, 48)))
			p := filepath.Join(root, "JPEGImages", "img0.jpg")
			os.Remove(p)
			if err := os.Symlink(out, p); err != nil {
				t.Skip(err)
			}
		}, Error, KindPathEscape, "JPEGImages/img0.jpg", 0, 3, nil},
		{"box past the border", VOCOptions{}, func(t *testing.T, root string) {
			rewrite(t, ann(root, "img1"), "<xmax>20</xmax>", "<xmax>90</xmax>")
		}, Warning, KindBoxClipped, "Annotations/img1.xml", 9, 4, func(t *testing.T, ds *Dataset) {
			if b := ds.Samples[1].Objects[0].Box; b != (box.Box{X0: 0, Y0: 0, X1: 64, Y1: 10}) {
				t.Fatalf("clipped box %v", b)
			}
		}},
		{"box outside the image", VOCOptions{}, func(t *testing.T, root string) {
			rewrite(t, ann(root, "img1"), "<xmin>1</xmin><ymin>1</ymin><xmax>20</xmax>", "<xmin>70</xmin><ymin>1</ymin><xmax>80</xmax>")
		}, Warning, KindBoxDropped, "Annotations/img1.xml", 9, 4, func(t *testing.T, ds *Dataset) {
			if n := len(ds.Samples[1].Objects); n != 1 {
				t.Fatalf("%d objects left, want 1", n)
			}
		}},
		{"zero-area box", VOCOptions{}, func(t *testing.T, root string) {
			rewrite(t, ann(root, "img1"), "<xmax>20</xmax>", "<xmax>0</xmax>")
		}, Warning, KindBoxDropped, "Annotations/img1.xml", 9, 4, func(t *testing.T, ds *Dataset) {
			if n := len(ds.Samples[1].Objects); n != 1 {
				t.Fatalf("%d objects left, want 1", n)
			}
		}},
		{"size mismatch", VOCOptions{}, func(t *testing.T, root string) {
			rewrite(t, ann(root, "img3"), "<width>64</width>", "<width>65</width>")
		}, Error, KindSizeMismatch, "JPEGImages/img3.jpg", 0, 3, nil},
		{"no size in the annotation", VOCOptions{}, func(t *testing.T, root string) {
			rewrite(t, ann(root, "img3"), "<width>64</width>", "")
		}, Error, KindSizeMismatch, "JPEGImages/img3.jpg", 0, 3, nil},
		{"no size element", VOCOptions{}, func(t *testing.T, root string) {
			rewrite(t, ann(root, "img3"), "<size>\n\t\t<width>64</width>\n\t\t<height>48</height>\n\t\t<depth>3</depth>\n\t</size>", "")
		}, Warning, KindBadField, "Annotations/img3.xml", 0, 4, func(t *testing.T, ds *Dataset) {
			if s := ds.Samples[3]; s.Width != 64 || s.Height != 48 {
				t.Fatalf("size %dx%d not taken from the image", s.Width, s.Height)
			}
		}},
		{"no size and no image check", VOCOptions{Images: ImageNone}, func(t *testing.T, root string) {
			rewrite(t, ann(root, "img3"), "<size>\n\t\t<width>64</width>\n\t\t<height>48</height>\n\t\t<depth>3</depth>\n\t</size>", "")
		}, Error, KindBadField, "Annotations/img3.xml", 0, 3, nil},
		{"duplicate ids", VOCOptions{Split: "trainval"}, func(t *testing.T, root string) {
			writeFile(t, filepath.Join(root, "ImageSets", "Main", "trainval.txt"), []byte("img0\nimg1\nimg2\nimg1\nimg3\n"))
		}, Error, KindDuplicateID, "ImageSets/Main/trainval.txt", 4, 4, nil},
		{"dotdot id", VOCOptions{Split: "trainval"}, func(t *testing.T, root string) {
			writeFile(t, filepath.Join(root, "ImageSets", "Main", "trainval.txt"), []byte("img0\n../img1\n"))
		}, Error, KindPathEscape, "ImageSets/Main/trainval.txt", 2, 1, nil},
		{"missing annotation", VOCOptions{Split: "trainval"}, func(t *testing.T, root string) {
			os.Remove(ann(root, "img2"))
		}, Error, KindMissingFile, "ImageSets/Main/trainval.txt", 3, 3, nil},
		{"missing split", VOCOptions{Split: "val"}, func(t *testing.T, root string) {}, Error, KindMissingFile, "ImageSets/Main/val.txt", 0, 0, nil},
		{"unknown class", VOCOptions{Classes: []string{"cat", "dog"}}, func(t *testing.T, root string) {
			rewrite(t, ann(root, "img0"), "<name>dog</name>", "<name>cow</name>")
		}, Error, KindUnknownClass, "Annotations/img0.xml", 14, 3, nil},
		{"missing image", VOCOptions{}, func(t *testing.T, root string) {
			os.Remove(filepath.Join(root, "JPEGImages", "img2.jpg"))
		}, Error, KindImageMissing, "JPEGImages/img2.jpg", 0, 3, nil},
		{"not an image", VOCOptions{}, func(t *testing.T, root string) {
			writeFile(t, filepath.Join(root, "JPEGImages", "img2.jpg"), []byte("GIF89a? no"))
		}, Error, KindImageFormat, "JPEGImages/img2.jpg", 0, 3, nil},
		{"over the pixel limit", VOCOptions{MaxPixels: 64*48 - 1}, func(t *testing.T, root string) {}, Error, KindImageTooLarge, "JPEGImages/img0.jpg", 0, 0, nil},
		{"bad coordinate", VOCOptions{}, func(t *testing.T, root string) {
			rewrite(t, ann(root, "img0"), "<xmax>20</xmax>", "<xmax>twenty</xmax>")
		}, Error, KindBadField, "Annotations/img0.xml", 9, 3, nil},
		{"nan coordinate", VOCOptions{}, func(t *testing.T, root string) {
			rewrite(t, ann(root, "img0"), "<xmax>20</xmax>", "<xmax>NaN</xmax>")
		}, Error, KindBadField, "Annotations/img0.xml", 9, 3, nil},
		{"filename wrong but id.jpg present", VOCOptions{}, func(t *testing.T, root string) {
			rewrite(t, ann(root, "img0"), "<filename>img0.jpg", "<filename>IMG_0.JPG")
		}, Warning, KindImageMissing, "Annotations/img0.xml", 0, 4, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := makeVOC(t)
			tc.corrupt(t, root)
			ds, ps := ReadVOC(root, tc.opt)
			if !hasProblem(ps, tc.sev, tc.kind, tc.file, tc.line) {
				t.Fatalf("no %s %s problem in %s (line %d); got:\n%v", tc.sev, tc.kind, tc.file, tc.line, ps)
			}
			if len(ds.Samples) != tc.samples {
				t.Fatalf("%d samples, want %d; problems:\n%v", len(ds.Samples), tc.samples, ps)
			}
			if tc.sev == Warning && ps.Count(Error) != 0 {
				t.Fatalf("unexpected errors: %v", ps)
			}
			if tc.check != nil {
				tc.check(t, ds)
			}
		})
	}
}

// TestReadVOCBCCD checks the numbers of the shared BCCD set: 364 images and
// 4,888 boxes (RBC 4155, WBC 372, Platelets 361), counted independently with
// `grep -c '<object>' Annotations/*.xml` and a Python ElementTree script. No
// box is dropped: the two malformed boxes (xmin == xmax and ymin == ymax in
// BloodImage_00338 and BloodImage_00343) are one pixel under VOC's inclusive
// convention, so they are kept and reported as box-tiny warnings; seven
// near-duplicate RBC boxes are reported as box-duplicate warnings.
func TestReadVOCBCCD(t *testing.T) {
	root := bccdRoot(t)
	ds, ps := ReadVOC(root, VOCOptions{Images: ImageHeader})
	if ps.Count(Error) != 0 {
		t.Fatalf("errors: %v", ps)
	}
	counts := map[string]int{}
	n := 0
	for _, s := range ds.Samples {
		n += len(s.Objects)
		for _, o := range s.Objects {
			counts[ds.Classes[o.Label]]++
		}
		if s.Width != 640 || s.Height != 480 {
			t.Fatalf("%s: %dx%d", s.Name, s.Width, s.Height)
		}
	}
	if len(ds.Samples) != 364 || n != 4888 {
		t.Fatalf("%d images, %d boxes; want 364, 4888", len(ds.Samples), n)
	}
	if !reflect.DeepEqual(counts, map[string]int{"RBC": 4155, "WBC": 372, "Platelets": 361}) {
		t.Fatalf("per class %v", counts)
	}
	if !reflect.DeepEqual(ds.Classes, []string{"Platelets", "RBC", "WBC"}) {
		t.Fatalf("classes %v", ds.Classes)
	}
	var tiny, dup []string
	for _, p := range ps {
		base := filepath.Base(p.File)
		switch p.Kind {
		case KindBoxTiny:
			tiny = append(tiny, fmt.Sprintf("%s:%d", base, p.Line))
		case KindBoxDuplicate:
			dup = append(dup, base)
		default:
			t.Errorf("unexpected problem %v", p)
		}
	}
	if want := []string{"BloodImage_00338.xml:158", "BloodImage_00343.xml:50"}; !reflect.DeepEqual(tiny, want) {
		t.Fatalf("tiny boxes %v, want %v", tiny, want)
	}
	wantDup := []string{"BloodImage_00020.xml", "BloodImage_00100.xml", "BloodImage_00104.xml", "BloodImage_00251.xml", "BloodImage_00284.xml", "BloodImage_00331.xml", "BloodImage_00403.xml"}
	if !reflect.DeepEqual(dup, wantDup) {
		t.Fatalf("duplicates %v, want %v", dup, wantDup)
	}
	// Splits: trainval (292) + test (72) is the whole set; train + val = trainval.
	for _, c := range []struct {
		split string
		n     int
	}{{"trainval,test", 364}, {"train", 205}, {"val", 87}, {"train,val", 292}} {
		d, ps := ReadVOC(root, VOCOptions{Split: c.split, Images: ImageNone, Classes: ds.Classes})
		if len(d.Samples) != c.n || ps.Count(Error) != 0 {
			t.Fatalf("split %s: %d samples, want %d; %v", c.split, len(d.Samples), c.n, ps.Err())
		}
	}
	// Listing trainval and train together lists every train id twice.
	_, ps = ReadVOC(root, VOCOptions{Split: "trainval,train", Images: ImageNone})
	if ps.Count(Error) != 205 || !hasProblem(ps, Error, KindDuplicateID, "train.txt", 1) {
		t.Fatalf("trainval,train: %d errors, want 205 duplicate ids", ps.Count(Error))
	}
}

// TestReadVOCBCCDDecode decodes every BCCD image (finds truncated files).
func TestReadVOCBCCDDecode(t *testing.T) {
	if testing.Short() {
		t.Skip("decodes 364 JPEGs")
	}
	root := bccdRoot(t)
	ds, ps := ReadVOC(root, VOCOptions{Images: ImageDecode})
	if ps.Count(Error) != 0 || len(ds.Samples) != 364 {
		t.Fatalf("%d samples, errors: %v", len(ds.Samples), ps.Err())
	}
}

func TestCheckImageAndLoadImageConfine(t *testing.T) {
	root := makeVOC(t)
	ds, ps := ReadVOC(root, VOCOptions{})
	if len(ps) != 0 {
		t.Fatal(ps)
	}
	img, err := LoadImage(ds, &ds.Samples[0], 0)
	if err != nil || img.W != 64 || img.H != 48 {
		t.Fatalf("LoadImage: %v", err)
	}
	for _, name := range []string{"../Annotations/img0.xml", "/etc/passwd", "a/../../x.jpg", "a\\..\\x.jpg", ""} {
		s := ds.Samples[0]
		s.File = name
		ps, ok := CheckImage(ds.ImageRoot, &s, ImageHeader, 0)
		if ok || len(ps) != 1 || ps[0].Kind != KindPathEscape {
			t.Errorf("CheckImage(%q): ok %v, %v", name, ok, ps)
		}
		var ie *ImageError
		if _, err := LoadImage(ds, &s, 0); !errors.As(err, &ie) || ie.Kind != KindPathEscape {
			t.Errorf("LoadImage(%q): %v", name, err)
		}
	}
	s := ds.Samples[0]
	s.Width = 63
	var ie *ImageError
	if _, err := LoadImage(ds, &s, 0); !errors.As(err, &ie) || ie.Kind != KindSizeMismatch {
		t.Errorf("LoadImage with a wrong size: %v", err)
	}
}

// TestReadVOCBCCDCorruptedCopy copies three BCCD images into a temp folder and
// breaks them the ways real data breaks: a JPEG cut short, an XML cut short,
// an object past the border.
func TestReadVOCBCCDCorruptedCopy(t *testing.T) {
	src := bccdRoot(t)
	root := t.TempDir()
	ids := []string{"BloodImage_00000", "BloodImage_00001", "BloodImage_00338"}
	for _, id := range ids {
		for _, f := range []string{"Annotations/" + id + ".xml", "JPEGImages/" + id + ".jpg"} {
			data, err := os.ReadFile(filepath.Join(src, f))
			if err != nil {
				t.Fatal(err)
			}
			switch f {
			case "JPEGImages/BloodImage_00000.jpg":
				data = data[:len(data)-1000]
			case "Annotations/BloodImage_00001.xml":
				data = data[:len(data)/2]
			case "Annotations/BloodImage_00338.xml":
				data = []byte(strings.Replace(string(data), "<xmax>504</xmax>", "<xmax>700</xmax>", 1))
			}
			writeFile(t, filepath.Join(root, f), data)
		}
	}
	ds, ps := ReadVOC(root, VOCOptions{Images: ImageDecode})
	for _, want := range []struct {
		sev  Severity
		kind string
		file string
		line int
	}{
		{Error, KindImageCorrupt, "JPEGImages/BloodImage_00000.jpg", 0},
		{Error, KindSyntax, "Annotations/BloodImage_00001.xml", 0},
		{Warning, KindBoxClipped, "Annotations/BloodImage_00338.xml", 158},
	} {
		if !hasProblem(ps, want.sev, want.kind, want.file, want.line) {
			t.Errorf("no %s %s in %s:%d; got\n%v", want.sev, want.kind, want.file, want.line, ps)
		}
	}
	if len(ds.Samples) != 1 || ds.Samples[0].Name != "BloodImage_00338" || len(ds.Samples[0].Objects) != 14 { // grep -c "<object>" BloodImage_00338.xml
		t.Fatalf("samples %+v", ds.Samples)
	}
	if b := ds.Samples[0].Objects[12].Box; b != (box.Box{X0: 503, Y0: 336, X1: 640, Y1: 337}) {
		t.Fatalf("clipped box %v", b)
	}
}

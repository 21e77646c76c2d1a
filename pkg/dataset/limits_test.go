package dataset

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"yolodistill/pkg/box"
)

// bruteDuplicateOf is duplicateOf's definition, checked pair by pair.
func bruteDuplicateOf(objs []Object) []int {
	of := make([]int, len(objs))
	var reps []int
	for j, o := range objs {
		of[j] = -1
		for _, i := range reps {
			if objs[i].Label == o.Label && box.IoU(objs[i].Box, o.Box) >= DuplicateIoU {
				of[j] = i
				break
			}
		}
		if of[j] < 0 {
			reps = append(reps, j)
		}
	}
	return of
}

// TestDuplicateOf compares the indexed search with the pair-by-pair
// definition on random layouts: copies, near copies across every size and
// position (boxes straddle the index's cell and size-class edges), other
// classes.
func TestDuplicateOf(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 200 {
		n := 1 + rng.IntN(120)
		var objs []Object
		for len(objs) < n {
			if len(objs) > 0 && rng.Float64() < 0.5 {
				// a near copy of an earlier box: jitter of up to 8% per edge
				o := objs[rng.IntN(len(objs))]
				w, h := o.Box.W(), o.Box.H()
				j := func(s float64) float64 { return (rng.Float64()*2 - 1) * 0.08 * s }
				o.Box = box.Box{X0: o.Box.X0 + j(w), Y0: o.Box.Y0 + j(h), X1: o.Box.X1 + j(w), Y1: o.Box.Y1 + j(h)}
				if o.Box.Empty() {
					continue
				}
				if rng.Float64() < 0.1 {
					o.Label = 1 - o.Label
				}
				objs = append(objs, o)
				continue
			}
			x, y := rng.Float64()*600, rng.Float64()*600
			w, h := 0.5+rng.Float64()*float64(uint(1)<<rng.IntN(9)), 0.5+rng.Float64()*float64(uint(1)<<rng.IntN(9))
			objs = append(objs, Object{Box: box.Box{X0: x, Y0: y, X1: x + w, Y1: y + h}, Label: rng.IntN(2)})
		}
		got, want := duplicateOf(objs), bruteDuplicateOf(objs)
		for j := range objs {
			if got[j] != want[j] {
				t.Fatalf("trial %d: object %d %v: duplicate of %d, the definition says %d", trial, j, objs[j].Box, got[j], want[j])
			}
		}
	}
}

// TestDuplicatesBounded: 3,000 copies of one box (the hostile annotation of
// the catalogue) cost milliseconds and give MaxDuplicatesListed lines plus
// one summary, not 4.5 million lines.
func TestDuplicatesBounded(t *testing.T) {
	objs := make([]Object, 3000)
	lines := make([]int, len(objs))
	for i := range objs {
		objs[i] = Object{Box: box.Box{X0: 27, Y0: 35, X1: 41, Y1: 47}}
		lines[i] = 10 + 12*i
	}
	start := time.Now()
	kept, ps, bad := ValidateObjects(objs, 64, 64, 1, "a.xml", lines)
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("3000 copies took %v", el)
	}
	if bad || len(kept) != 3000 {
		t.Fatalf("bad %v, kept %d", bad, len(kept))
	}
	if len(ps) != MaxDuplicatesListed+1 {
		t.Fatalf("%d problems, want %d:\n%v", len(ps), MaxDuplicatesListed+1, ps)
	}
	last := ps[len(ps)-1]
	if last.Kind != KindBoxDuplicate || last.Line != lines[MaxDuplicatesListed+1] ||
		!strings.Contains(last.Message, "object 4 and 2995 more objects") || !strings.Contains(last.Message, "2999 in all, of 3000 objects") {
		t.Errorf("summary line: %v", last)
	}
}

// TestEmptyBoxMessages: a dropped box says why it has no area.
func TestEmptyBoxMessages(t *testing.T) {
	for _, tc := range []struct {
		b    box.Box
		want string
	}{
		{box.Box{X0: 10, Y0: 5, X1: 3, Y1: 20}, "is inverted (right edge 3 left of the left edge 10"},
		{box.Box{X0: 1, Y0: 9, X1: 5, Y1: 2}, "is inverted (bottom edge 2 above the top edge 9"},
		{box.Box{X0: 9, Y0: 9, X1: 2, Y1: 2}, "is inverted (right edge left of the left edge, bottom above the top"},
		{box.Box{X0: 4, Y0: 1, X1: 4, Y1: 8}, "has zero width"},
		{box.Box{X0: 1, Y0: 4, X1: 8, Y1: 4}, "has zero height"},
	} {
		kept, ps, bad := ValidateObjects([]Object{{Box: tc.b}}, 64, 64, 1, "a.xml", nil)
		if bad || len(kept) != 0 || len(ps) != 1 || ps[0].Kind != KindBoxDropped || !strings.Contains(ps[0].Message, tc.want) {
			t.Errorf("%v: kept %d, %v; want a box-dropped warning saying %q", tc.b, len(kept), ps, tc.want)
		}
	}
}

// TestLimits: an image with more objects than MaxObjects is an error found
// while parsing (VOC: parsing stops there; COCO: its annotations are not
// kept), and an annotation file over MaxFileBytes is refused before it is
// read; the other images are read.
func TestLimits(t *testing.T) {
	objs := func(n int) []vocObj {
		var out []vocObj
		for i := range n {
			out = append(out, vocObj{name: "cat", xmin: fmt.Sprint(1 + i%50), ymin: "1", xmax: fmt.Sprint(5 + i%50), ymax: "9"})
		}
		return out
	}
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "Annotations", "many.xml"), []byte(vocXML("many.jpg", 64, 48, objs(12))))
	writeFile(t, filepath.Join(root, "Annotations", "ok.xml"), []byte(vocXML("ok.jpg", 64, 48, objs(10))))
	big := vocXML("big.jpg", 64, 48, objs(1)) + strings.Repeat("<!-- padding -->\n", 200)
	writeFile(t, filepath.Join(root, "Annotations", "big.xml"), []byte(big))
	lim := Limits{MaxObjects: 10, MaxFileBytes: 2000}
	ds, ps := ReadVOC(root, VOCOptions{Images: ImageNone, Classes: []string{"cat"}, Limits: lim})
	if len(ds.Samples) != 1 || ds.Samples[0].Name != "ok" {
		t.Fatalf("samples %v, want ok only; %v", ds.Samples, ps)
	}
	if !hasProblem(ps, Error, KindTooManyObjects, "many.xml", 0) || !hasProblem(ps, Error, KindFileTooLarge, "big.xml", 0) {
		t.Fatalf("problems:\n%v", ps)
	}
	for _, p := range ps {
		if p.Kind == KindTooManyObjects && !strings.Contains(p.Message, "more than 10 objects (data.max_objects") {
			t.Errorf("message: %v", p)
		}
		if p.Kind == KindFileTooLarge && !strings.Contains(p.Message, "annotation is 3.6 KiB, over the limit of 2.0 KiB; not read (data.max_annotation_mb") {
			t.Errorf("message: %v", p)
		}
	}
	// No limit (negative) reads all three.
	if ds, ps := ReadVOC(root, VOCOptions{Images: ImageNone, Classes: []string{"cat"}, Limits: Limits{MaxObjects: -1, MaxFileBytes: -1}}); len(ds.Samples) != 3 {
		t.Fatalf("without limits: %d samples; %v", len(ds.Samples), ps)
	}

	// COCO: one image over the object limit; the JSON file over the size limit.
	var anns []string
	for i := range 12 {
		anns = append(anns, fmt.Sprintf(`{"id": %d, "image_id": 1, "category_id": 1, "bbox": [%d, 1, 4, 8]}`, i+1, i))
	}
	anns = append(anns, `{"id": 100, "image_id": 2, "category_id": 1, "bbox": [1, 1, 4, 8]}`)
	js := `{"images": [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48}, {"id": 2, "file_name": "b.jpg", "width": 64, "height": 48}],
"annotations": [` + strings.Join(anns, ",\n") + `], "categories": [{"id": 1, "name": "cat"}]}`
	jp := filepath.Join(t.TempDir(), "instances.json")
	if err := os.WriteFile(jp, []byte(js), 0o644); err != nil {
		t.Fatal(err)
	}
	cds, cps := ReadCOCO(jp, COCOOptions{Images: ImageNone, Limits: lim})
	if len(cds.Samples) != 1 || cds.Samples[0].ID != 2 || !hasProblem(cps, Error, KindTooManyObjects, "instances.json", 12) {
		t.Fatalf("COCO: samples %v; problems\n%v", cds.Samples, cps)
	}
	_, cps = ReadCOCO(jp, COCOOptions{Images: ImageNone, Limits: Limits{MaxFileBytes: 100}})
	if len(cps) != 1 || !hasProblem(cps, Error, KindFileTooLarge, "instances.json", 0) {
		t.Fatalf("COCO over the size limit: %v", cps)
	}
}

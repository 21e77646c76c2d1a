package dataset

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"yolodistill/pkg/box"
)

// reportDataset has classes a, b, c: 3 "a" boxes, 1 "b", no "c", over two
// images (the second without objects).
func reportDataset() *Dataset {
	obj := func(label int, x float64) Object {
		return Object{Box: box.Box{X0: x, Y0: 1, X1: x + 3, Y1: 5}, Label: label}
	}
	return &Dataset{Classes: []string{"a", "b", "c"}, Samples: []Sample{
		{Name: "x", Objects: []Object{obj(0, 0), obj(1, 4), obj(0, 8), obj(0, 12)}},
		{Name: "y"},
	}}
}

func TestCheckReportCounts(t *testing.T) {
	ps := Problems{
		{File: "b.xml", Line: 3, Severity: Warning, Kind: KindBoxTiny, Message: "tiny"},
		{File: "a.xml", Severity: Error, Kind: KindSyntax, Message: "bad"},
		{File: "b.xml", Line: 2, Severity: Warning, Kind: KindBoxTiny, Message: "tiny too"},
		{File: "c.png", Severity: Error, Kind: KindImageCorrupt, Message: "corrupt"},
		{File: "b.xml", Line: 9, Severity: Warning, Kind: KindBoxClipped, Message: "clipped"},
	}
	r := NewCheckReport("data", "voc", reportDataset(), ps)
	want := &CheckReport{Path: "data", Format: "voc", Images: 2, Boxes: 4, Classes: []string{"a", "b", "c"},
		PerClass: map[string]int{"a": 3, "b": 1}, Errors: 2, Warnings: 3,
		ByKind:   map[string]int{KindBoxTiny: 2, KindSyntax: 1, KindImageCorrupt: 1, KindBoxClipped: 1},
		Problems: Problems{ps[0], ps[1], ps[2], ps[3], ps[4]}}
	want.Problems.Sort()
	if !reflect.DeepEqual(r, want) {
		t.Fatalf("report\n%+v\nwant\n%+v", r, want)
	}
	var files []string
	for _, p := range r.Problems {
		files = append(files, fmt.Sprintf("%s:%d", p.File, p.Line))
	}
	if got := strings.Join(files, " "); got != "a.xml:0 b.xml:2 b.xml:3 b.xml:9 c.png:0" {
		t.Errorf("problems not sorted: %s", got)
	}
}

// TestCheckReportEmpty: no classes and no problems are [] in JSON, never null.
func TestCheckReportEmpty(t *testing.T) {
	r := NewCheckReport("e.json", "coco", &Dataset{}, nil)
	var b bytes.Buffer
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"\n \"classes\": [],\n", "\n \"problems\": []\n", "\n \"boxes_per_class\": {},\n"} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("JSON lacks %q:\n%s", s, b.String())
		}
	}
	var back CheckReport
	if err := json.Unmarshal(b.Bytes(), &back); err != nil || !reflect.DeepEqual(&back, r) {
		t.Errorf("JSON round trip: %v\n%+v\n%+v", err, back, *r)
	}
}

func TestCheckReportText(t *testing.T) {
	many := &Dataset{}
	for i := 0; i < MaxClassesShown+2; i++ {
		many.Classes = append(many.Classes, fmt.Sprintf("k%d", i))
	}
	many.Samples = []Sample{{Objects: []Object{{Label: 0}, {Label: MaxClassesShown + 1}}}}
	shown := []string{"k0 1"} // the last class's box is past the cut
	for i := 1; i < MaxClassesShown; i++ {
		shown = append(shown, fmt.Sprintf("k%d 0", i))
	}
	tests := []struct {
		name string
		r    *CheckReport
		want string
	}{
		{"clean", NewCheckReport("d", "voc", reportDataset(), nil),
			"d: voc, 2 images usable, 4 boxes, 3 classes [a 3, b 1, c 0]; 0 errors, 0 warnings\n"},
		{"problems", NewCheckReport("d", "coco", reportDataset(), Problems{
			{File: "f.json", Line: 7, Severity: Warning, Kind: KindBoxTiny, Message: "m1"},
			{File: "f.json", Line: 2, Severity: Error, Kind: KindDuplicateID, Message: "m2"},
			{File: "e.jpg", Severity: Warning, Kind: KindBoxTiny, Message: "m3"},
		}), "e.jpg: warning: m3 (box-tiny)\nf.json:2: error: m2 (duplicate-id)\nf.json:7: warning: m1 (box-tiny)\n" +
			"d: coco, 2 images usable, 4 boxes, 3 classes [a 3, b 1, c 0]; 1 errors, 2 warnings (box-tiny 2, duplicate-id 1)\n"},
		{"no classes", NewCheckReport("d", "voc", &Dataset{}, nil),
			"d: voc, 0 images usable, 0 boxes, 0 classes []; 0 errors, 0 warnings\n"},
		{"many classes", NewCheckReport("d", "voc", many, nil),
			fmt.Sprintf("d: voc, 1 images usable, 2 boxes, %d classes [%s, ... (--json lists all)]; 0 errors, 0 warnings\n",
				MaxClassesShown+2, strings.Join(shown, ", "))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tt.r.WriteText(&b); err != nil {
				t.Fatal(err)
			}
			if b.String() != tt.want {
				t.Errorf("got\n%s\nwant\n%s", b.String(), tt.want)
			}
		})
	}
}

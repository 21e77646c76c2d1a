package dataset

import (
	"fmt"
	"testing"
)

// Seed corpora live in testdata/fuzz/FuzzVOCXML and testdata/fuzz/FuzzCOCOJSON
// (real BCCD and COCO-shaped files, broken variants); f.Add adds a few more.
// Run: go test -run=^$ -fuzz=FuzzVOCXML -fuzztime=60s ./pkg/dataset/

// checkSamples asserts what every reader promises for the samples it returns.
func checkSamples(t *testing.T, ds *Dataset) {
	t.Helper()
	ids := map[int64]bool{}
	for _, s := range ds.Samples {
		if ids[s.ID] {
			t.Fatalf("sample id %d twice", s.ID)
		}
		ids[s.ID] = true
		if !localName(s.File) {
			t.Fatalf("file %q escapes", s.File)
		}
		if s.Width <= 0 || s.Height <= 0 {
			t.Fatalf("sample %d size %dx%d", s.ID, s.Width, s.Height)
		}
		for _, o := range s.Objects {
			b := o.Box
			if b.Empty() || b.X0 < 0 || b.Y0 < 0 || b.X1 > float64(s.Width) || b.Y1 > float64(s.Height) {
				t.Fatalf("sample %d: box %v outside %dx%d or empty", s.ID, b, s.Width, s.Height)
			}
			if o.Label < 0 || o.Label >= len(ds.Classes) {
				t.Fatalf("label %d of %d classes", o.Label, len(ds.Classes))
			}
		}
	}
}

func countObjects(ds *Dataset) int {
	n := 0
	for _, s := range ds.Samples {
		n += len(s.Objects)
	}
	return n
}

func FuzzVOCXML(f *testing.F) {
	f.Add([]byte(vocXML("a.jpg", 64, 48, []vocObj{{"cat", "1", "1", "20", "10", "0"}, {"dog", "30", "5", "70", "48", "1"}})))
	f.Add([]byte("<annotation><size><width>5</width><height>5</height></size><object><name>x</name><bndbox><xmin>0</xmin><ymin>-3</ymin><xmax>9e9</xmax><ymax>NaN</ymax></bndbox></object></annotation>"))
	f.Add([]byte(`<?xml version="1.0" encoding="ISO-8859-1"?><annotation><filename>caf` + "\xe9" + `.jpg</filename></annotation>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ann, ps := ParseVOCXML(data, "f.xml")
		for _, p := range ps {
			if p.File != "f.xml" || p.Message == "" || p.Line < 0 {
				t.Fatalf("bad problem %+v", p)
			}
		}
		if ps.Count(Error) > 0 || ann.Width <= 0 || ann.Height <= 0 {
			return
		}
		// Build the sample as ReadVOC does, validate, and check the promises.
		ds := &Dataset{}
		index := map[string]int{}
		s := Sample{File: "a.jpg", Width: ann.Width, Height: ann.Height}
		var lines []int
		for _, o := range ann.Objects {
			l, ok := index[o.Name]
			if !ok {
				l = len(ds.Classes)
				index[o.Name] = l
				ds.Classes = append(ds.Classes, o.Name)
			}
			s.Objects = append(s.Objects, Object{Box: o.Box, Label: l, Difficult: o.Difficult, Truncated: o.Truncated})
			lines = append(lines, o.Line)
		}
		kept, _, bad := ValidateObjects(s.Objects, s.Width, s.Height, len(ds.Classes), "f.xml", lines)
		if bad {
			return
		}
		s.Objects = kept
		ds.Samples = []Sample{s}
		checkSamples(t, ds)
		// What we write, we read back without error and with the same objects.
		out, err := MarshalVOCXML(&ds.Samples[0], ds.Classes)
		if err != nil {
			t.Fatal(err)
		}
		back, ps := ParseVOCXML(out, "g.xml")
		if ps.Count(Error) > 0 || len(back.Objects) != len(kept) || back.Width != s.Width || back.Height != s.Height {
			t.Fatalf("re-read: %d objects (want %d), %v\n%s", len(back.Objects), len(kept), ps, out)
		}
		for i, o := range back.Objects {
			if o.Name != ds.Classes[kept[i].Label] || o.Difficult != kept[i].Difficult || o.Truncated != kept[i].Truncated {
				t.Fatalf("object %d re-read as %+v", i, o)
			}
			if kept[i].Box.X0 == float64(int64(kept[i].Box.X0)) && kept[i].Box.Y0 == float64(int64(kept[i].Box.Y0)) && o.Box != kept[i].Box {
				t.Fatalf("integer box %v re-read as %v", kept[i].Box, o.Box)
			}
		}
	})
}

func FuzzCOCOJSON(f *testing.F) {
	f.Add([]byte(cocoSmall))
	f.Add([]byte(`{"images":[{"id":1,"file_name":"../x","width":1,"height":1}],"annotations":[{"id":1,"image_id":1,"category_id":1,"bbox":[0,0,1e308,-1]}],"categories":[{"id":1,"name":"a"}]}`))
	f.Add([]byte(`{"images":{},"annotations":[[]],"categories":[{"id":1e400}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ds, ps := ParseCOCO(data, "f.json", COCOOptions{})
		for _, p := range ps {
			if p.File != "f.json" || p.Message == "" || p.Line < 0 {
				t.Fatalf("bad problem %+v", p)
			}
		}
		checkSamples(t, ds)
		out, err := MarshalCOCO(ds)
		if err != nil {
			t.Fatalf("MarshalCOCO of a parsed dataset: %v", err)
		}
		back, ps := ParseCOCO(out, "g.json", COCOOptions{})
		if ps.Count(Error) > 0 || len(back.Samples) != len(ds.Samples) || countObjects(back) != countObjects(ds) {
			t.Fatalf("re-read: %d samples %d objects (want %d, %d): %v", len(back.Samples), countObjects(back), len(ds.Samples), countObjects(ds), ps)
		}
		if fmt.Sprint(back.Classes) != fmt.Sprint(ds.Classes) {
			t.Fatalf("classes %q re-read as %q", ds.Classes, back.Classes)
		}
	})
}

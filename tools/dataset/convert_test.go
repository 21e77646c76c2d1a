package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"yolodistill/pkg/cli/clitest"
	"yolodistill/pkg/dataset"
)

func TestConvertRoundTrip(t *testing.T) {
	root := smallVOC(t, nil)
	tmp := t.TempDir()
	coco, voc := filepath.Join(tmp, "coco"), filepath.Join(tmp, "voc")
	if r := clitest.Run(t, run, "convert", "--from", "voc", "--to", "coco", root, coco); r.Code != 0 || r.Stdout != "" {
		t.Fatalf("voc->coco exit %d, stderr %s", r.Code, r.Stderr)
	}
	if r := clitest.Run(t, run, "convert", "--from", "coco", "--to", "voc", "--images", "copy", coco, voc); r.Code != 0 {
		t.Fatalf("coco->voc exit %d, stderr %s", r.Code, r.Stderr)
	}
	a, ps := dataset.ReadVOC(root, dataset.VOCOptions{Images: dataset.ImageDecode})
	b, ps2 := dataset.ReadVOC(voc, dataset.VOCOptions{Images: dataset.ImageDecode})
	if len(ps)+len(ps2) != 0 || !reflect.DeepEqual(a.Samples, b.Samples) || !reflect.DeepEqual(a.Classes, b.Classes) {
		t.Fatalf("round trip differs: %v %v\n%+v\n%+v", ps, ps2, a.Samples, b.Samples)
	}
	// XML files are identical after a second round (the writer is a fixed point).
	voc2 := filepath.Join(tmp, "voc2")
	if r := clitest.Run(t, run, "convert", "--from", "voc", "--to", "voc", "--images", "none", voc, voc2); r.Code != 0 {
		t.Fatalf("voc->voc exit %d: %s", r.Code, r.Stderr)
	}
	for _, id := range []string{"im0", "im1", "im2"} {
		x1, _ := os.ReadFile(filepath.Join(voc, "Annotations", id+".xml"))
		x2, _ := os.ReadFile(filepath.Join(voc2, "Annotations", id+".xml"))
		if len(x1) == 0 || !bytes.Equal(x1, x2) {
			t.Fatalf("%s.xml differs", id)
		}
	}
	// OUT exists and is not empty: refused, untouched.
	r := clitest.Run(t, run, "convert", "--from", "voc", "--to", "coco", root, voc)
	if r.Code != 1 || !strings.Contains(r.Stderr, "not empty; refusing") {
		t.Fatalf("existing OUT: exit %d, %s", r.Code, r.Stderr)
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
	r := clitest.Run(t, run, "convert", "--from", "voc", "--to", "coco", root, out)
	if r.Code != 1 || r.Stdout != "" || !strings.Contains(r.Stderr, "size-mismatch") || !strings.Contains(r.Stderr, "nothing written") {
		t.Fatalf("exit %d, stderr:\n%s", r.Code, r.Stderr)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("OUT was created: %v", err)
	}
	r = clitest.Run(t, run, "convert", "--from", "voc", "--to", "coco", "--skip-bad", root, out)
	if r.Code != 0 || !strings.Contains(r.Stderr, "wrote "+out+" (coco): 2 images, 4 boxes, 2 classes") {
		t.Fatalf("--skip-bad: exit %d, stderr:\n%s", r.Code, r.Stderr)
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
	if r := clitest.Run(t, run, "convert", "--from", "voc", "--to", "coco", "--split", "trainval,test", bccd, coco); r.Code != 0 {
		t.Fatalf("exit %d: %s", r.Code, r.Stderr)
	}
	r := clitest.Run(t, run, "check", "--images", "header", coco)
	if r.Code != 0 || !strings.Contains(r.Stdout, "coco, 364 images usable, 4888 boxes") {
		t.Fatalf("check of the COCO output: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if r := clitest.Run(t, run, "convert", "--from", "coco", "--to", "voc", "--images", "symlink", coco, voc); r.Code != 0 {
		t.Fatalf("exit %d: %s", r.Code, r.Stderr)
	}
	a, _ := dataset.ReadVOC(bccd, dataset.VOCOptions{Split: "trainval,test", Images: dataset.ImageNone})
	b, ps := dataset.ReadVOC(voc, dataset.VOCOptions{Split: "trainval", Images: dataset.ImageHeader})
	if ps.Count(dataset.Error) != 0 || !reflect.DeepEqual(a.Samples, b.Samples) {
		t.Fatalf("BCCD VOC->COCO->VOC differs (%v)", ps.Err())
	}
}

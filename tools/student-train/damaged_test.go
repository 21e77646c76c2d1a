package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"yolodistill/pkg/augment"
	"yolodistill/pkg/dataset"
	"yolodistill/pkg/softtarget"
)

// writeVOC writes teacher.yml's synthetic set (40 images of 64 px, seed 3:
// 32 train images) as a VOC folder and truncates the named train images (by
// position in ImageSets/Main/train.txt) to half their bytes. It returns the
// folder and the damaged file names.
func writeVOC(t *testing.T, damage ...int) (string, []string) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "voc")
	opts := dataset.SynthOptions{Images: 40, Size: 64, Seed: 3, MinObjects: 1, MaxObjects: 4,
		Classes: []string{"circle", "ring", "square"}}
	if _, err := dataset.WriteSynth(context.Background(), root, "voc", opts, 2); err != nil {
		t.Fatal(err)
	}
	list, err := os.ReadFile(filepath.Join(root, "ImageSets", "Main", "train.txt"))
	if err != nil {
		t.Fatal(err)
	}
	names := strings.Fields(string(list))
	var bad []string
	for _, k := range damage {
		p := filepath.Join(root, "JPEGImages", names[k]+".jpg")
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b[:len(b)/2], 0o644); err != nil {
			t.Fatal(err)
		}
		bad = append(bad, names[k]+".jpg")
	}
	return root, bad
}

// warnings counts the stderr lines that warn about skipping file.
func warnings(stderr, file string) int {
	n := 0
	for _, l := range strings.Split(stderr, "\n") {
		if strings.Contains(l, "warning: skipping") && strings.Contains(l, file) {
			n++
		}
	}
	return n
}

// TestDamagedImageKeepsReplayAligned: with a truncated JPEG in the training
// split, teacher-dump skips it (one warning; the next image of the order
// takes its slot, mixup partners included) and no stored view names it;
// student-train replays the file without meeting it, and the online teacher,
// whose loader skips the same way, gives the same losses: teacher outputs and
// student views stay paired. When only the student's copy is damaged,
// student-train drops the views of that image with their soft targets, warns
// once, and finishes.
func TestDamagedImageKeepsReplayAligned(t *testing.T) {
	needBins(t)
	dir := t.TempDir()
	teacherCk := teacherCkpt(t)
	root, bad := writeVOC(t, 0, 5)
	data := "-o data.root=" + root + " -o data.skip_limit=0.1" // two of 32 images
	iters := "-o train.max_iters=9"                            // more than the 8 batches of one epoch: every image is met
	file := filepath.Join(dir, "st.arrow")
	dump := fmt.Sprintf("teacher-dump -c %s %s --weights %s --student-config %s --student-override data.root=%s --student-override data.skip_limit=0.1 --views 2 --out %s",
		teacherYML, data, teacherCk, studentYML, root, file)
	code, stderr := sh(t, dump)
	if code != 0 {
		t.Fatalf("dump: exit %d\n%s", code, stderr)
	}
	for _, f := range bad {
		if n := warnings(stderr, f); n != 1 {
			t.Errorf("teacher-dump: %d warnings about %s, want 1:\n%s", n, f, stderr)
		}
	}
	if !strings.Contains(stderr, "2 of 32 images could not be loaded and were skipped") {
		t.Errorf("teacher-dump: no summary of the skipped images:\n%s", stderr)
	}
	r, err := softtarget.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	if r.Len() != 2*32 {
		t.Errorf("%d views stored, want 64 (every slot filled)", r.Len())
	}
	for i := 0; i < r.Len(); i++ {
		var v softtarget.View
		if err := r.ReadRow(i, &v); err != nil {
			t.Fatal(err)
		}
		var rec augment.Record
		if err := rec.UnmarshalBinary(v.Aug); err != nil {
			t.Fatal(err)
		}
		for _, f := range bad {
			if v.File == f {
				t.Errorf("view %d is of the damaged image %s", i, f)
			}
		}
		if rec.Partner >= 0 && (rec.Partner == rec.Sample) {
			t.Errorf("view %d: mixup partner is the image itself", i)
		}
	}
	r.Close()

	offline, online := filepath.Join(dir, "offline"), filepath.Join(dir, "online")
	code, stderr = sh(t, fmt.Sprintf("student-train -c %s %s %s --soft-targets %s --out %s", studentYML, data, iters, file, offline))
	if code != 0 {
		t.Fatalf("offline: exit %d\n%s", code, stderr)
	}
	if strings.Contains(stderr, "warning: skipping") {
		t.Errorf("offline: the stored views name no damaged image, yet:\n%s", stderr)
	}
	code, stderr = sh(t, fmt.Sprintf("student-train -c %s %s %s --teacher-weights %s --out %s", studentYML, data, iters, teacherCk, online))
	if code != 0 {
		t.Fatalf("online: exit %d\n%s", code, stderr)
	}
	for _, f := range bad {
		if n := warnings(stderr, f); n != 1 {
			t.Errorf("online: %d warnings about %s, want 1:\n%s", n, f, stderr)
		}
	}
	compare(t, metrics(t, offline), metrics(t, online), 1e-6)

	// The student's copy of one image is damaged, the teacher's was not.
	intact, _ := writeVOC(t)
	full := filepath.Join(dir, "intact.arrow")
	if code, stderr := sh(t, fmt.Sprintf("teacher-dump -c %s -o data.root=%s --weights %s --student-config %s --student-override data.root=%s --views 2 --out %s",
		teacherYML, intact, teacherCk, studentYML, intact, full)); code != 0 {
		t.Fatalf("dump of the intact set: exit %d\n%s", code, stderr)
	}
	studentSide, bad1 := writeVOC(t, 3)
	replayed := filepath.Join(dir, "replayed")
	code, stderr = sh(t, fmt.Sprintf("student-train -c %s -o data.root=%s %s --soft-targets %s --out %s", studentYML, studentSide, iters, full, replayed))
	if code != 0 {
		t.Fatalf("student copy damaged: exit %d\n%s", code, stderr)
	}
	if n := warnings(stderr, bad1[0]); n != 1 || !strings.Contains(stderr, "1 training image(s) could not be loaded and were skipped") {
		t.Errorf("student copy damaged: %d warnings about %s, want 1, and the summary:\n%s", n, bad1[0], stderr)
	}
	if !exists(filepath.Join(replayed, "model_final.ckpt")) {
		t.Errorf("student copy damaged: no model_final.ckpt")
	}
}

package teacher

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"yolodistill/pkg/augment"
	"yolodistill/pkg/checkpoint"
	"yolodistill/pkg/config"
	"yolodistill/pkg/dataset"
	"yolodistill/pkg/detector"
	"yolodistill/pkg/detector/detectortest"
	"yolodistill/pkg/softtarget"
	"yolodistill/pkg/softtarget/softtargettest"
)

// tinyTeacher writes a freshly initialised teacher of teacherYML and returns
// Dump's options for it (no student configuration, one view per image, the
// output still to choose).
func tinyTeacher(t *testing.T) DumpOptions {
	t.Helper()
	ck, _ := detectortest.Checkpoint(t, t.TempDir(), "teacher.ckpt", teacherYML)
	return DumpOptions{Config: teacherYML, Weights: ck, Views: 1}
}

// dump runs Dump and returns its log, one line per message.
func dump(t *testing.T, opt DumpOptions) string {
	t.Helper()
	var log strings.Builder
	opt.Log = func(format string, args ...any) { fmt.Fprintf(&log, format+"\n", args...) }
	if err := Dump(context.Background(), opt); err != nil {
		t.Fatalf("Dump: %v\n%s", err, log.String())
	}
	return log.String()
}

// dumpStream runs Dump with the stream output and reads the stream back.
func dumpStream(t *testing.T, opt DumpOptions) []*softtarget.View {
	t.Helper()
	var out bytes.Buffer
	opt.Out, opt.Stdout = "-", &out
	dump(t, opt)
	r, err := softtarget.NewReader(&out, "-")
	if err != nil {
		t.Fatal(err)
	}
	return softtargettest.ReadAll(t, r)
}

// openDump opens a dumped file; it is closed when the test ends.
func openDump(t *testing.T, path string) *softtarget.Reader {
	t.Helper()
	r, err := softtarget.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// TestDumpFileStreamDeterministic: two dumps with the same seed are the same
// bytes, and the stream holds the file's views; the metadata names the
// teacher, its classes, the pairs' feature maps and the student's replay
// settings; the file holds, batch by batch, the student's own training
// loader's views (both input sizes of the configuration).
func TestDumpFileStreamDeterministic(t *testing.T) {
	opt := tinyTeacher(t)
	opt.StudentConfig, opt.Views = studentPairsYML, 2
	dir := t.TempDir()
	f1, f2 := filepath.Join(dir, "a.arrow"), filepath.Join(dir, "b.arrow")
	for _, f := range []string{f1, f2} {
		opt.Out = f
		if log := dump(t, opt); !strings.Contains(log, "wrote 64 views") {
			t.Errorf("log lacks the summary: %s", log)
		}
	}
	b1, _ := os.ReadFile(f1)
	b2, _ := os.ReadFile(f2)
	if !bytes.Equal(b1, b2) {
		t.Fatal("two dumps with the same seed differ")
	}
	fromStream := dumpStream(t, opt)
	rf := openDump(t, f1)
	fromFile := softtargettest.ReadAll(t, rf)
	if len(fromFile) != 64 || len(fromStream) != 64 {
		t.Fatalf("%d views in the file, %d in the stream, want 64", len(fromFile), len(fromStream))
	}

	teacher, _ := config.Load(teacherYML, nil)
	student, _ := config.Load(studentPairsYML, nil)
	m := rf.Meta()
	if m.TeacherConfigHash != teacher.ModelHash() || !slices.Equal(m.Classes, teacher.Data.Classes) ||
		!slices.Equal(m.Features, []string{"backbone.c4", "head.0.out"}) {
		t.Errorf("meta %+v", m)
	}
	aug := augment.FromConfig(student)
	if want := aug.ReplaySettings(true); !maps.Equal(m.Replay, want) || m.Replay["data.augment.expand.fill"] != "[123,116,103]" {
		t.Errorf("replay settings %v, want the student's %v", m.Replay, want)
	}
	// The file holds, batch by batch, the student's own training loader.
	sp, err := dataset.OpenSplit(student, "train", dataset.SplitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := augment.NewLoader(augment.LoaderConfig{Source: sp.Source, Augment: augment.FromConfig(student),
		BatchSize: 4, Seed: uint64(student.Train.Seed), Shuffle: true, DropLast: true, Train: true, MixupEpochs: 1, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Start(context.Background(), augment.Position{}); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	sizes := map[int]bool{}
	for i := 0; i < 64; i += 4 {
		b, err := l.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for k, it := range b.Items {
			v, s := fromFile[i+k], fromStream[i+k]
			want, _ := it.Record.MarshalBinary()
			if !bytes.Equal(v.Aug, want) || v.InputH != b.Size || v.ViewIndex != b.Pos.Epoch ||
				v.ImageID != sp.DS.Samples[it.Index].ID || v.File != sp.DS.Samples[it.Index].File {
				t.Fatalf("view %d: file row %v/%d/%d differs from the loader's batch %+v item %d", i+k, v.ImageID, v.ViewIndex, v.InputH, b.Pos, k)
			}
			if !bytes.Equal(s.Aug, v.Aug) || !slices.Equal(s.Outputs[2].Data, v.Outputs[2].Data) ||
				!slices.Equal(s.Features["backbone.c4"].Data, v.Features["backbone.c4"].Data) {
				t.Fatalf("view %d: stream and file differ", i+k)
			}
			if got := v.Features["backbone.c4"].Shape; !slices.Equal(got, []int{32, b.Size / 16, b.Size / 16}) {
				t.Errorf("view %d: backbone.c4 shape %v", i+k, got)
			}
			sizes[b.Size] = true
		}
	}
	if len(sizes) != 2 {
		t.Errorf("input sizes %v: the test config draws from two", sizes)
	}
}

// TestDumpOutputsAreTeacherPredictions checks a row against the teacher run
// on the replayed view alone (batch of 1).
func TestDumpOutputsAreTeacherPredictions(t *testing.T) {
	opt := tinyTeacher(t)
	opt.StudentConfig, opt.Out = studentYML, filepath.Join(t.TempDir(), "a.arrow")
	dump(t, opt)
	r := openDump(t, opt.Out)
	var v softtarget.View
	if err := r.ReadRow(5, &v); err != nil {
		t.Fatal(err)
	}
	teacher, _ := config.Load(teacherYML, nil)
	det, _ := detector.New(teacher)
	c, _ := checkpoint.Load(opt.Weights)
	if err := det.LoadCheckpoint(c); err != nil {
		t.Fatal(err)
	}
	var rec augment.Record
	if err := rec.UnmarshalBinary(v.Aug); err != nil {
		t.Fatal(err)
	}
	sp, _ := dataset.OpenSplit(teacher, "train", dataset.SplitOptions{})
	aug := augment.FromConfig(teacher)
	img := make([]float32, 3*v.InputH*v.InputW)
	if _, err := aug.Replay(sp.Source, &rec, img); err != nil {
		t.Fatal(err)
	}
	outs, _, err := det.Predict(img, 1, v.InputH, v.InputW)
	if err != nil {
		t.Fatal(err)
	}
	const tol = 1e-5
	for s := range outs {
		for i, x := range outs[s] {
			if d := float64(x - v.Outputs[s].Data[i]); d > tol || d < -tol {
				t.Fatalf("scale %d value %d: stored %v, teacher on the replayed view %v", s, i, v.Outputs[s].Data[i], x)
			}
		}
	}
}

// TestShardsCoverTheDump: shards 0, 1 and 2 of 3, concatenated, are the
// views of the whole dump in order.
func TestShardsCoverTheDump(t *testing.T) {
	opt := tinyTeacher(t)
	opt.StudentConfig = studentYML
	keys := func(shard, shards int) []softtarget.Key {
		o := opt
		o.Shard, o.Shards = shard, shards
		var ks []softtarget.Key
		for _, v := range dumpStream(t, o) {
			ks = append(ks, softtarget.Key{ImageID: v.ImageID, View: v.ViewIndex})
		}
		return ks
	}
	all := keys(0, 1)
	parts := append(keys(0, 3), append(keys(1, 3), keys(2, 3)...)...)
	if len(all) != 32 || !slices.Equal(all, parts) {
		t.Errorf("shards 0..2 of 3 give %d views %v, the whole dump %d %v", len(parts), parts, len(all), all)
	}
}

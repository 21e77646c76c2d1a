package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
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
	"yolodistill/pkg/softtarget"
)

const (
	teacherYML      = "testdata/teacher.yml"
	studentYML      = "testdata/student.yml"
	studentPairsYML = "testdata/student_pairs.yml"
)

// teacherCkpt writes the freshly initialised teacher of cfgPath (with
// overrides) to a checkpoint in dir.
func teacherCkpt(t *testing.T, dir, cfgPath string, overrides ...string) string {
	t.Helper()
	cfg, err := config.Load(cfgPath, overrides)
	if err != nil {
		t.Fatal(err)
	}
	d, err := detector.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "teacher.ckpt")
	if err := checkpoint.Save(p, d.ToCheckpoint()); err != nil {
		t.Fatal(err)
	}
	return p
}

func runTool(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func readAll(t *testing.T, r *softtarget.Reader) []softtarget.View {
	t.Helper()
	var vs []softtarget.View
	for {
		var v softtarget.View
		err := r.Next(&v)
		if err == io.EOF {
			return vs
		}
		if err != nil {
			t.Fatal(err)
		}
		vs = append(vs, v)
	}
}

func TestDumpFileStreamDeterministic(t *testing.T) {
	dir := t.TempDir()
	ck := teacherCkpt(t, dir, teacherYML)
	f1, f2 := filepath.Join(dir, "a.arrow"), filepath.Join(dir, "b.arrow")
	args := []string{"-c", teacherYML, "--weights", ck, "--student-config", studentPairsYML, "--views", "2"}
	for _, f := range []string{f1, f2} {
		code, stdout, stderr := runTool(t, append(args, "--out", f)...)
		if code != 0 || stdout != "" {
			t.Fatalf("exit %d, stdout %d bytes, stderr %s", code, len(stdout), stderr)
		}
		if !strings.Contains(stderr, "teacher-dump: wrote 64 views") {
			t.Errorf("stderr lacks the summary: %s", stderr)
		}
	}
	b1, _ := os.ReadFile(f1)
	b2, _ := os.ReadFile(f2)
	if !bytes.Equal(b1, b2) {
		t.Fatal("two dumps with the same seed differ")
	}
	code, stream, stderr := runTool(t, append(args, "--out", "-")...)
	if code != 0 {
		t.Fatalf("stream: exit %d: %s", code, stderr)
	}
	rs, err := softtarget.NewReader(strings.NewReader(stream), "-")
	if err != nil {
		t.Fatal(err)
	}
	fromStream := readAll(t, rs)
	rf, err := softtarget.Open(f1)
	if err != nil {
		t.Fatal(err)
	}
	defer rf.Close()
	fromFile := readAll(t, rf)
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
	dir := t.TempDir()
	ck := teacherCkpt(t, dir, teacherYML)
	f := filepath.Join(dir, "a.arrow")
	if code, _, stderr := runTool(t, "-c", teacherYML, "--weights", ck, "--student-config", studentYML, "--out", f); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	r, err := softtarget.Open(f)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var v softtarget.View
	if err := r.ReadRow(5, &v); err != nil {
		t.Fatal(err)
	}
	teacher, _ := config.Load(teacherYML, nil)
	det, _ := detector.New(teacher)
	c, _ := checkpoint.Load(ck)
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

func TestShardsCoverTheDump(t *testing.T) {
	dir := t.TempDir()
	ck := teacherCkpt(t, dir, teacherYML)
	keys := func(args ...string) []softtarget.Key {
		code, stream, stderr := runTool(t, append([]string{"-c", teacherYML, "--weights", ck, "--student-config", studentYML, "--out", "-"}, args...)...)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		r, err := softtarget.NewReader(strings.NewReader(stream), "-")
		if err != nil {
			t.Fatal(err)
		}
		var ks []softtarget.Key
		for _, v := range readAll(t, r) {
			ks = append(ks, softtarget.Key{ImageID: v.ImageID, View: v.ViewIndex})
		}
		return ks
	}
	all := keys()
	parts := append(keys("--shard", "0/3"), append(keys("--shard", "1/3"), keys("--shard", "2/3")...)...)
	if len(all) != 32 || !slices.Equal(all, parts) {
		t.Errorf("shards 0..2 of 3 give %d views %v, the whole dump %d %v", len(parts), parts, len(all), all)
	}
}

func TestDumpErrors(t *testing.T) {
	dir := t.TempDir()
	ck := teacherCkpt(t, dir, teacherYML)
	other := filepath.Join(dir, "other_student.yml")
	os.WriteFile(other, []byte("_base_: "+mustAbs(t, studentYML)+"\ndistill: {teacher: "+mustAbs(t, teacherYML)+"}\ndata: {classes: [circle, ring, star]}\n"), 0o644)
	wrongTeacher := filepath.Join(dir, "wrong_teacher.yml")
	os.WriteFile(wrongTeacher, []byte("_base_: "+mustAbs(t, teacherYML)+"\nmodel: {head_width: 0.25}\n"), 0o644)
	wt := filepath.Join(dir, "wt.yml")
	os.WriteFile(wt, []byte("_base_: "+mustAbs(t, studentYML)+"\ndistill: {teacher: "+wrongTeacher+"}\n"), 0o644)
	out := filepath.Join(dir, "never.arrow")
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"bad shard", []string{"-c", teacherYML, "--weights", ck, "--shard", "3/3"}, 2, `--shard: "3/3"`},
		{"no views", []string{"-c", teacherYML, "--weights", ck, "--views", "0"}, 2, "--views 0"},
		{"sparse threshold", []string{"-c", teacherYML, "--weights", ck, "--sparse", "1.5"}, 2, "--sparse 1.5"},
		{"other classes", []string{"-c", teacherYML, "--weights", ck, "--student-config", other, "--out", out}, 1, `classes ["circle" "ring" "star"], the teacher`},
		{"other teacher", []string{"-c", teacherYML, "--weights", ck, "--student-config", wt, "--out", out}, 1, "another teacher"},
		{"missing weights", []string{"-c", teacherYML, "--weights", filepath.Join(dir, "nope.ckpt"), "--out", out}, 1, "nope.ckpt"},
		{"weights of another model", []string{"-c", wrongTeacher, "--weights", ck, "--out", out}, 1, "does not fit the model"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runTool(t, tt.args...)
			if code != tt.code || stdout != "" || !strings.Contains(stderr, tt.stderr) {
				t.Errorf("exit %d (want %d), stdout %q, stderr %q (want %q)", code, tt.code, stdout, stderr, tt.stderr)
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s exists after a failure", out)
			}
		})
	}
}

func TestSparseAndHalf(t *testing.T) {
	dir := t.TempDir()
	ck := teacherCkpt(t, dir, teacherYML)
	dense, half, sparse := filepath.Join(dir, "d.arrow"), filepath.Join(dir, "h.arrow"), filepath.Join(dir, "s.arrow")
	base := []string{"-c", teacherYML, "--weights", ck, "--student-config", studentYML}
	for _, c := range []struct {
		out   string
		extra []string
	}{{dense, nil}, {half, []string{"--fp16"}}, {sparse, []string{"--sparse", "0.005"}}} {
		if code, _, stderr := runTool(t, append(append(base, c.extra...), "--out", c.out)...); code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
	}
	rd, _ := softtarget.Open(dense)
	rh, _ := softtarget.Open(half)
	rs, _ := softtarget.Open(sparse)
	defer rd.Close()
	defer rh.Close()
	defer rs.Close()
	if rh.Meta().Encoding.String() != "dense16" || rs.Meta().Encoding.String() != "sparse32" {
		t.Fatalf("encodings %s %s", rh.Meta().Encoding, rs.Meta().Encoding)
	}
	var d, h, s softtarget.View
	for _, e := range []error{rd.ReadRow(3, &d), rh.ReadRow(3, &h), rs.ReadRow(3, &s)} {
		if e != nil {
			t.Fatal(e)
		}
	}
	for i, x := range d.Outputs[1].Data {
		if dd := x - h.Outputs[1].Data[i]; dd > 1e-2*(1+abs(x)) || -dd > 1e-2*(1+abs(x)) {
			t.Fatalf("float16 value %d: %v vs %v", i, h.Outputs[1].Data[i], x)
		}
	}
	// Objectness is stored for every cell in the sparse form.
	k := 5 + 3
	hw := d.Outputs[1].Shape[1] * d.Outputs[1].Shape[2]
	for a := 0; a < 3; a++ {
		for p := 0; p < hw; p++ {
			if i := (a*k+4)*hw + p; s.Outputs[1].Data[i] != d.Outputs[1].Data[i] {
				t.Fatalf("sparse objectness differs at %d", i)
			}
		}
	}
	fi, _ := os.Stat(dense)
	fs, _ := os.Stat(sparse)
	if fs.Size() >= fi.Size() {
		t.Errorf("sparse file %d bytes, dense %d", fs.Size(), fi.Size())
	}
}

func abs(x float32) float32 {
	if x < 0 {
		return -x
	}
	return x
}

func mustAbs(t *testing.T, p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestInterruptedLeavesNoFile: an interrupted dump exits 130 and leaves
// neither the output nor a temporary file.
func TestInterruptedLeavesNoFile(t *testing.T) {
	dir := t.TempDir()
	ck := teacherCkpt(t, dir, teacherYML)
	outDir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, []string{"-c", teacherYML, "--weights", ck, "--out", filepath.Join(outDir, "x.arrow")}, strings.NewReader(""), &stdout, &stderr)
	if code != 130 || !strings.Contains(stderr.String(), "interrupted") || !strings.Contains(stderr.String(), "views (") {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
	if ents, _ := os.ReadDir(outDir); len(ents) != 0 {
		t.Errorf("left %v", ents)
	}
}

// TestDumpRecordsReplaySettings: the recorded replay settings are those of
// the configuration whose augmentation made the views (the student's, with
// its overrides; the teacher's without --student-config), and the expand
// fill only when expansion is on.
func TestDumpRecordsReplaySettings(t *testing.T) {
	dir := t.TempDir()
	ck := teacherCkpt(t, dir, teacherYML)
	defaults := map[string]string{
		"data.augment.mean":        "[0.485,0.456,0.406]",
		"data.augment.std":         "[0.229,0.224,0.225]",
		"data.augment.expand.fill": "[123,116,103]",
	}
	tests := []struct {
		name string
		args []string
		want map[string]string
	}{
		{"teacher's data section", nil, defaults},
		{"student overrides", []string{"--student-config", studentYML, "--student-override", "data.augment.mean=[0.5, 0.25, 0.125]",
			"--student-override", "data.augment.std=[1, 2, 3]", "--student-override", "data.augment.expand.fill=[0.9, 255, 7.5]"},
			map[string]string{"data.augment.mean": "[0.5,0.25,0.125]", "data.augment.std": "[1,2,3]", "data.augment.expand.fill": "[0,255,7]"}},
		{"no expansion, no fill", []string{"--student-config", studentYML, "--student-override", "data.augment.expand.enabled=false"},
			map[string]string{"data.augment.mean": defaults["data.augment.mean"], "data.augment.std": defaults["data.augment.std"]}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(dir, fmt.Sprintf("d%d.arrow", i))
			args := append([]string{"-c", teacherYML, "--weights", ck, "--shard", "0/8", "--out", out}, tt.args...)
			if code, _, stderr := runTool(t, args...); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			r, err := softtarget.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if got := r.Meta().Replay; !maps.Equal(got, tt.want) {
				t.Errorf("replay settings %v, want %v", got, tt.want)
			}
		})
	}
}

// TestViewCacheSameBytes: with flips as the only augmentation at one input
// size, views repeat from the third epoch on (at most two per image); the
// cache writes them from memory, and the file (outputs and feature maps) is
// byte-identical to the one written with --cache-mb 0, where the teacher runs
// on every view.
func TestViewCacheSameBytes(t *testing.T) {
	dir := t.TempDir()
	ck := teacherCkpt(t, dir, teacherYML)
	flipsOnly := []string{"data.augment.mixup.enabled=false", "data.augment.color_distort=false",
		"data.augment.expand.enabled=false", "data.augment.crop=false", "data.augment.multi_scale=[64]",
		"data.augment.random_interp=false"}
	args := []string{"-c", teacherYML, "--weights", ck, "--student-config", studentPairsYML, "--views", "6"}
	for _, o := range flipsOnly {
		args = append(args, "--student-override", o)
	}
	files := map[string]string{}
	logs := map[string]string{}
	for _, mb := range []string{"0", "1024"} {
		f := filepath.Join(dir, "c"+mb+".arrow")
		code, _, stderr := runTool(t, append(slices.Clone(args), "--cache-mb", mb, "--out", f)...)
		if code != 0 {
			t.Fatalf("--cache-mb %s: exit %d: %s", mb, code, stderr)
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		files[mb], logs[mb] = string(b), stderr
	}
	if files["1024"] != files["0"] {
		t.Error("the dump with the view cache differs from the one without")
	}
	// 32 training images, batches of 4, 6 epochs: 192 views of at most 64
	// distinct pixel sets; from the third epoch on, most batches repeat whole.
	if !strings.Contains(logs["1024"], "teacher-dump: wrote 192 views") || !strings.Contains(logs["1024"], "came from memory") {
		t.Errorf("cached dump's summary: %s", logs["1024"])
	}
	if strings.Contains(logs["0"], "came from memory") {
		t.Errorf("--cache-mb 0 reused views: %s", logs["0"])
	}
	if code, _, stderr := runTool(t, append(slices.Clone(args), "--cache-mb=-1", "--out", filepath.Join(dir, "x.arrow"))...); code != 2 || !strings.Contains(stderr, "--cache-mb -1") {
		t.Errorf("--cache-mb -1: exit %d, %s", code, stderr)
	}
}

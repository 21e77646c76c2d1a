package main

// The tool's contract: flags, exit codes, stdout (data only) and stderr,
// files. What the dump holds (determinism, shards, encodings, the view
// cache, the recorded settings) is tested in pkg/teacher on teacher.Dump.

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"yolodistill/pkg/cli/clitest"
	"yolodistill/pkg/detector/detectortest"
	"yolodistill/pkg/softtarget"
	"yolodistill/pkg/softtarget/softtargettest"
)

const (
	teacherYML      = "testdata/teacher.yml"
	studentYML      = "testdata/student.yml"
	studentPairsYML = "testdata/student_pairs.yml"
)

// teacherCkpt writes a freshly initialised teacher of teacher.yml.
func teacherCkpt(t *testing.T) string {
	t.Helper()
	ck, _ := detectortest.Checkpoint(t, t.TempDir(), "teacher.ckpt", teacherYML)
	return ck
}

// TestFileAndStream: --out FILE writes the file and nothing on stdout,
// --out - writes the same views as an Arrow stream on stdout; both end with
// a summary on stderr. --views and --shard are honoured: 2 epochs of the
// first of 8 ranges of 8 batches of 4 views.
func TestFileAndStream(t *testing.T) {
	ck := teacherCkpt(t)
	f := filepath.Join(t.TempDir(), "a.arrow")
	args := []string{"-c", teacherYML, "--weights", ck, "--student-config", studentPairsYML, "--views", "2", "--shard", "0/8"}
	res := clitest.Run(t, run, append(args, "--out", f)...)
	if res.Code != 0 || res.Stdout != "" {
		t.Fatalf("exit %d, stdout %d bytes, stderr %s", res.Code, len(res.Stdout), res.Stderr)
	}
	if !strings.Contains(res.Stderr, "teacher-dump: wrote 8 views") {
		t.Errorf("stderr lacks the summary: %s", res.Stderr)
	}
	stream := clitest.Run(t, run, append(args, "--out", "-")...)
	if stream.Code != 0 || !strings.Contains(stream.Stderr, "teacher-dump: wrote 8 views to stdout") {
		t.Fatalf("stream: exit %d: %s", stream.Code, stream.Stderr)
	}
	rs, err := softtarget.NewReader(strings.NewReader(stream.Stdout), "-")
	if err != nil {
		t.Fatal(err)
	}
	fromStream := softtargettest.ReadAll(t, rs)
	rf, err := softtarget.Open(f)
	if err != nil {
		t.Fatal(err)
	}
	defer rf.Close()
	fromFile := softtargettest.ReadAll(t, rf)
	if len(fromFile) != 8 || len(fromStream) != 8 {
		t.Fatalf("%d views in the file, %d in the stream, want 8", len(fromFile), len(fromStream))
	}
	for i, v := range fromFile {
		s := fromStream[i]
		if !bytes.Equal(s.Aug, v.Aug) || !slices.Equal(s.Outputs[2].Data, v.Outputs[2].Data) ||
			!slices.Equal(s.Features["backbone.c4"].Data, v.Features["backbone.c4"].Data) {
			t.Fatalf("view %d: stream and file differ", i)
		}
	}
}

// TestEncodingFlags: --fp16 stores float16 values and --sparse THRESH the
// sparse form with that threshold (what each encoding holds is tested in
// pkg/teacher and pkg/softtarget).
func TestEncodingFlags(t *testing.T) {
	out := filepath.Join(t.TempDir(), "st.arrow")
	res := clitest.Run(t, run, "-c", teacherYML, "--weights", teacherCkpt(t), "--shard", "0/8", "--fp16", "--sparse", "0.005", "--out", out)
	if res.Code != 0 {
		t.Fatalf("exit %d: %s", res.Code, res.Stderr)
	}
	r, err := softtarget.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got, want := r.Meta().Encoding, (softtarget.Encoding{Kind: softtarget.Sparse, Half: true, Threshold: 0.005}); got != want {
		t.Errorf("encoding %+v, want %+v", got, want)
	}
}

func TestDumpErrors(t *testing.T) {
	dir := t.TempDir()
	ck := teacherCkpt(t)
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
		{"no views", []string{"-c", teacherYML, "--weights", ck, "--views=-1"}, 2, "--views -1"},
		{"sparse threshold", []string{"-c", teacherYML, "--weights", ck, "--sparse", "1.5"}, 2, "--sparse 1.5"},
		{"negative cache", []string{"-c", teacherYML, "--weights", ck, "--student-config", studentPairsYML, "--cache-mb=-1", "--out", out}, 2, "--cache-mb -1"},
		{"other classes", []string{"-c", teacherYML, "--weights", ck, "--student-config", other, "--out", out}, 1, `classes ["circle" "ring" "star"], the teacher here (-c testdata/teacher.yml)`},
		{"other teacher", []string{"-c", teacherYML, "--weights", ck, "--student-config", wt, "--out", out}, 1, "model.head_width is 0.125 here, 0.25 for the student's teacher"},
		{"missing weights", []string{"-c", teacherYML, "--weights", filepath.Join(dir, "nope.ckpt"), "--out", out}, 1, "nope.ckpt"},
		{"weights of another model", []string{"-c", wrongTeacher, "--weights", ck, "--out", out}, 1, "does not fit the model"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := clitest.Run(t, run, tt.args...)
			if res.Code != tt.code || res.Stdout != "" || !strings.Contains(res.Stderr, tt.stderr) {
				t.Errorf("exit %d (want %d), stdout %q, stderr %q (want %q)", res.Code, tt.code, res.Stdout, res.Stderr, tt.stderr)
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s exists after a failure", out)
			}
		})
	}
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
	ck := teacherCkpt(t)
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

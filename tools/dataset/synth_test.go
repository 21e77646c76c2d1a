package main

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"yolodistill/pkg/cli"
	"yolodistill/pkg/cli/clitest"
	"yolodistill/pkg/dataset"
)

func synthEnv() (*env, *bytes.Buffer, *bytes.Buffer) {
	var out, errb bytes.Buffer
	return &env{ctx: context.Background(), stdin: strings.NewReader(""), stdout: &out, stderr: &errb,
		log: cli.Logger{Name: name, W: &errb}}, &out, &errb
}

func treeBytes(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		b, err := os.ReadFile(p)
		m[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSynthCmdReproducible(t *testing.T) {
	for _, format := range []string{"voc", "coco"} {
		base := t.TempDir()
		var trees []map[string][]byte
		for _, sub := range []string{"a", "b"} {
			c := &synthCmd{Out: filepath.Join(base, sub), Format: format, Images: 10, Size: 96, Seed: 5,
				MinObjects: 3, MaxObjects: 14, Workers: len(sub)}
			e, out, errb := synthEnv()
			if err := c.Run(e); err != nil {
				t.Fatalf("%s: %v\n%s", format, err, errb)
			}
			if out.Len() != 0 {
				t.Errorf("%s: synth wrote to stdout: %q", format, out)
			}
			if !strings.Contains(errb.String(), "dataset: train: 8 images") {
				t.Errorf("%s: stderr lacks the summary:\n%s", format, errb)
			}
			trees = append(trees, treeBytes(t, c.Out))
		}
		if len(trees[0]) == 0 || len(trees[0]) != len(trees[1]) {
			t.Fatalf("%s: %d vs %d files", format, len(trees[0]), len(trees[1]))
		}
		for n, b := range trees[0] {
			if !bytes.Equal(b, trees[1][n]) {
				t.Errorf("%s: %s differs", format, n)
			}
		}
		want := "ImageSets/Main/train.txt"
		if format == "coco" {
			want = "val/annotations.json"
		}
		if _, ok := trees[0][want]; !ok {
			t.Errorf("%s: no %s in the output", format, want)
		}
		// No temporary folders left next to the output.
		ents, _ := os.ReadDir(base)
		if len(ents) != 2 {
			t.Errorf("%s: %d entries in the parent folder, want 2", format, len(ents))
		}
	}
}

func TestSynthCmdRefusals(t *testing.T) {
	full := t.TempDir()
	os.WriteFile(filepath.Join(full, "x"), []byte("keep"), 0o644)
	cases := []struct {
		name string
		cmd  synthCmd
		want string
	}{
		{"non-empty out", synthCmd{Out: full, Format: "voc", Images: 2, Size: 64, MaxObjects: 3}, "not empty"},
		{"unknown class", synthCmd{Out: filepath.Join(t.TempDir(), "o"), Format: "voc", Images: 2, Size: 64, MaxObjects: 3, Classes: "circle,blob"}, "blob"},
		{"zero images", synthCmd{Out: filepath.Join(t.TempDir(), "o"), Format: "voc", Images: 0, Size: 64, MaxObjects: 3}, "--images"},
		{"tiny size", synthCmd{Out: filepath.Join(t.TempDir(), "o"), Format: "voc", Images: 2, Size: 16, MaxObjects: 3}, "size"},
	}
	for _, tc := range cases {
		e, _, _ := synthEnv()
		err := tc.cmd.Run(e)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one mentioning %q", tc.name, err, tc.want)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(full, "x")); string(b) != "keep" {
		t.Error("a refused run touched the existing folder")
	}
}

// TestSynthCLI runs synth through the tool's own argument parsing, once the
// grammar includes it.
func TestSynthCLI(t *testing.T) {
	if _, ok := reflect.TypeOf(grammar{}).FieldByName("Synth"); !ok {
		t.Skip("the dataset grammar has no synth command yet")
	}
	out := filepath.Join(t.TempDir(), "s")
	r := clitest.Run(t, run, "synth", "--out", out, "--format", "voc", "--images", "4", "--size", "64", "--seed", "3")
	if r.Code != 0 || r.Stdout != "" {
		t.Fatalf("exit %d, stdout %q, stderr:\n%s", r.Code, r.Stdout, r.Stderr)
	}
	if r := clitest.Run(t, run, "synth", "--out", out, "--format", "yolo", "--images", "4"); r.Code != 2 {
		t.Errorf("--format yolo: exit %d, want 2", r.Code)
	}
}

// TestSynthObjectSizes: --min-object/--max-object reach the generator, so the
// files equal what a configuration's data.synth.min_object/max_object renders
// in process (the demo's 20..48 px objects on 128 px images).
func TestSynthObjectSizes(t *testing.T) {
	out := filepath.Join(t.TempDir(), "o")
	c := &synthCmd{Out: out, Format: "voc", Images: 10, Size: 128, Seed: 1, Classes: "circle,square",
		MinObjects: 1, MaxObjects: 3, MinObject: 20, MaxObject: 48}
	e, _, errb := synthEnv()
	if err := c.Run(e); err != nil {
		t.Fatalf("%v\n%s", err, errb)
	}
	ds, ps := dataset.ReadVOC(out, dataset.VOCOptions{Classes: []string{"circle", "square"}})
	if err := ps.Err(); err != nil {
		t.Fatalf("reading the written set: %v", err)
	}
	if len(ds.Samples) != 10 {
		t.Fatalf("%d samples, want 10", len(ds.Samples))
	}
	opts := dataset.SynthOptions{Images: 10, Size: 128, Seed: 1, Classes: []string{"circle", "square"},
		MinObjects: 1, MaxObjects: 3, MinObject: 20, MaxObject: 48}
	small := opts
	small.MinObject, small.MaxObject = 0, 0
	differs := false
	for _, s := range ds.Samples {
		i := 0
		fmt.Sscanf(strings.TrimPrefix(s.Name, "synth_"), "%d", &i)
		want, _ := dataset.SynthImage(opts, i)
		def, _ := dataset.SynthImage(small, i)
		if len(s.Objects) != len(want.Objects) {
			t.Fatalf("%s: %d objects, generator %d", s.Name, len(s.Objects), len(want.Objects))
		}
		for k, o := range s.Objects {
			w := want.Objects[k]
			if o.Label != w.Label || math.Abs(o.Box.X0-w.Box.X0) > 1 || math.Abs(o.Box.Y0-w.Box.Y0) > 1 ||
				math.Abs(o.Box.X1-w.Box.X1) > 1 || math.Abs(o.Box.Y1-w.Box.Y1) > 1 {
				t.Errorf("%s object %d: file %v label %d, generator %v label %d", s.Name, k, o.Box, o.Label, w.Box, w.Label)
			}
		}
		if len(def.Objects) != len(want.Objects) || (len(def.Objects) > 0 && def.Objects[0].Box != want.Objects[0].Box) {
			differs = true
		}
	}
	if !differs {
		t.Error("the object-size flags changed nothing against the defaults")
	}
	e, _, _ = synthEnv()
	bad := &synthCmd{Out: filepath.Join(t.TempDir(), "b"), Format: "voc", Images: 2, Size: 128, MaxObjects: 3, MinObject: 20, MaxObject: 80}
	if err := bad.Run(e); err == nil || !strings.Contains(err.Error(), "do not fit") {
		t.Errorf("--max-object 80 on 128 px: error %v, want one saying the sizes do not fit", err)
	}
}

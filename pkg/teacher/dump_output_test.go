package teacher

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"yolodistill/pkg/softtarget"
)

// TestSparseAndHalf: float16 values are within float16 rounding of the
// dense ones; the sparse form stores objectness for every cell and is
// smaller than the dense file.
func TestSparseAndHalf(t *testing.T) {
	opt := tinyTeacher(t)
	opt.StudentConfig = studentYML
	dir := t.TempDir()
	dense, half, sparse := filepath.Join(dir, "d.arrow"), filepath.Join(dir, "h.arrow"), filepath.Join(dir, "s.arrow")
	for _, c := range []struct {
		out string
		enc softtarget.Encoding
	}{{dense, softtarget.Encoding{}}, {half, softtarget.Encoding{Half: true}}, {sparse, softtarget.Encoding{Kind: softtarget.Sparse, Threshold: 0.005}}} {
		o := opt
		o.Out, o.Encoding = c.out, c.enc
		dump(t, o)
	}
	rd, rh, rs := openDump(t, dense), openDump(t, half), openDump(t, sparse)
	if rh.Meta().Encoding.String() != "dense16" || rs.Meta().Encoding.String() != "sparse32" {
		t.Fatalf("encodings %s %s", rh.Meta().Encoding, rs.Meta().Encoding)
	}
	var d, h, s softtarget.View
	for _, e := range []error{rd.ReadRow(3, &d), rh.ReadRow(3, &h), rs.ReadRow(3, &s)} {
		if e != nil {
			t.Fatal(e)
		}
	}
	abs := func(x float32) float32 { return max(x, -x) }
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

// TestDumpRecordsReplaySettings: the recorded replay settings are those of
// the configuration whose augmentation made the views (the student's, with
// its overrides; the teacher's without a student configuration), and the
// expand fill only when expansion is on.
func TestDumpRecordsReplaySettings(t *testing.T) {
	opt := tinyTeacher(t)
	opt.Shard, opt.Shards = 0, 8
	defaults := map[string]string{
		"data.augment.mean":        "[0.485,0.456,0.406]",
		"data.augment.std":         "[0.229,0.224,0.225]",
		"data.augment.expand.fill": "[123,116,103]",
	}
	tests := []struct {
		name      string
		student   string
		overrides []string
		want      map[string]string
	}{
		{"teacher's data section", "", nil, defaults},
		{"student overrides", studentYML, []string{"data.augment.mean=[0.5, 0.25, 0.125]", "data.augment.std=[1, 2, 3]", "data.augment.expand.fill=[0.9, 255, 7.5]"},
			map[string]string{"data.augment.mean": "[0.5,0.25,0.125]", "data.augment.std": "[1,2,3]", "data.augment.expand.fill": "[0,255,7]"}},
		{"no expansion, no fill", studentYML, []string{"data.augment.expand.enabled=false"},
			map[string]string{"data.augment.mean": defaults["data.augment.mean"], "data.augment.std": defaults["data.augment.std"]}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := opt
			o.StudentConfig, o.StudentOverride = tt.student, tt.overrides
			o.Out = filepath.Join(t.TempDir(), fmt.Sprintf("d%d.arrow", i))
			dump(t, o)
			if got := openDump(t, o.Out).Meta().Replay; !maps.Equal(got, tt.want) {
				t.Errorf("replay settings %v, want %v", got, tt.want)
			}
		})
	}
}

// TestViewCacheSameBytes: with flips as the only augmentation at one input
// size, views repeat from the third epoch on (at most two per image); the
// cache writes them from memory, and the file (outputs and feature maps) is
// byte-identical to the one written with the cache off, where the teacher
// runs on every view.
func TestViewCacheSameBytes(t *testing.T) {
	opt := tinyTeacher(t)
	opt.StudentConfig, opt.Views = studentPairsYML, 6
	opt.StudentOverride = []string{"data.augment.mixup.enabled=false", "data.augment.color_distort=false",
		"data.augment.expand.enabled=false", "data.augment.crop=false", "data.augment.multi_scale=[64]",
		"data.augment.random_interp=false"}
	dir := t.TempDir()
	files := map[int]string{}
	logs := map[int]string{}
	for _, mb := range []int{0, 1024} {
		o := opt
		o.CacheMB, o.Out = mb, filepath.Join(dir, fmt.Sprintf("c%d.arrow", mb))
		logs[mb] = dump(t, o)
		b, err := os.ReadFile(o.Out)
		if err != nil {
			t.Fatal(err)
		}
		files[mb] = string(b)
	}
	if files[1024] != files[0] {
		t.Error("the dump with the view cache differs from the one without")
	}
	// 32 training images, batches of 4, 6 epochs: 192 views of at most 64
	// distinct pixel sets; from the third epoch on, most batches repeat whole.
	if !strings.Contains(logs[1024], "wrote 192 views") || !strings.Contains(logs[1024], "came from memory") {
		t.Errorf("cached dump's summary: %s", logs[1024])
	}
	if strings.Contains(logs[0], "came from memory") {
		t.Errorf("the dump without the cache reused views: %s", logs[0])
	}
}

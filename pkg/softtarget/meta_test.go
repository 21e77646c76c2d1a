package softtarget_test

import (
	"bytes"
	"maps"
	"path/filepath"
	"strings"
	"testing"

	"yolodistill/pkg/anchor"
	"yolodistill/pkg/softtarget"
	"yolodistill/pkg/softtarget/softtargettest"
)

func TestCheckCompatible(t *testing.T) {
	got := softtargettest.Meta(3, softtarget.Encoding{Half: true}, "c5")
	cases := []struct {
		name string
		edit func(w *softtarget.Meta)
		want []string // substrings of the error; none: compatible
	}{
		{"same", func(w *softtarget.Meta) {}, nil},
		{"encoding is not checked", func(w *softtarget.Meta) { w.Encoding = softtarget.Encoding{Kind: softtarget.Sparse, Threshold: 0.3} }, nil},
		{"empty expectations", func(w *softtarget.Meta) { *w = softtarget.Meta{} }, nil},
		{"other teacher", func(w *softtarget.Meta) { w.TeacherConfigHash = "sha256:other" }, []string{`teacher config hash is "sha256:teacher-abc", expected "sha256:other"`}},
		{"other class list", func(w *softtarget.Meta) { w.Classes = []string{"class0", "dog", "class2"} }, []string{`class 1 is "class1", expected "dog"`}},
		{"other class count", func(w *softtarget.Meta) { w.Classes = w.Classes[:2] }, []string{"3 classes", "expected 2"}},
		{"other anchor count", func(w *softtarget.Meta) { w.Anchors = w.Anchors[:6]; w.Masks = [][]int{{3, 4, 5}, {0, 1, 2}} }, []string{"9 anchors, expected 6", "3 scales), expected", "(2 scales)"}},
		{"other anchors", func(w *softtarget.Meta) { w.Anchors = append([]anchor.Anchor{{11, 13}}, w.Anchors[1:]...) }, []string{"anchors [[10 13]"}},
		{"missing feature", func(w *softtarget.Meta) { w.Features = []string{"c4"} }, []string{`feature map "c4" is not stored`}},
		{"two differences at once", func(w *softtarget.Meta) { w.TeacherConfigHash = "x"; w.Classes = []string{"a"} }, []string{"teacher config hash", "3 classes"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := softtargettest.Meta(3, softtarget.Encoding{Half: true}, "c5")
			tc.edit(&w)
			err := got.CheckCompatible(w)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, s := range tc.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
		})
	}
}

// writeRawStream is softtarget.RawStream, failing the test on error.
func writeRawStream(t *testing.T, m softtarget.Meta, edit map[string]string) []byte {
	t.Helper()
	b, err := softtarget.RawStream(m, edit)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSchemaMetadataErrors(t *testing.T) {
	m := softtargettest.Meta(2, softtarget.Encoding{})
	if _, err := softtarget.NewReader(bytes.NewReader(writeRawStream(t, m, nil)), "ok"); err != nil {
		t.Fatalf("unedited raw stream: %v", err)
	}
	cases := []struct {
		name string
		edit map[string]string
		want string
	}{
		{"newer version", map[string]string{softtarget.KeyVersion: "3"}, "schema version 3, this program reads versions 1 to 2"},
		{"version 0", map[string]string{softtarget.KeyVersion: "0"}, "schema version 0"},
		{"not ours", map[string]string{softtarget.KeyFormat: ""}, "not a soft-target file"},
		{"no teacher hash", map[string]string{softtarget.KeyTeacher: ""}, "no " + softtarget.KeyTeacher},
		{"bad classes", map[string]string{softtarget.KeyClasses: "[1,"}, softtarget.KeyClasses},
		{"channels disagree", map[string]string{softtarget.KeyChannels: "[21,21,22]"}, "scale 2 has 22 channels"},
		{"encoding vs columns", map[string]string{softtarget.KeyEncoding: "dense16"}, "columns do not match"},
		{"unknown encoding", map[string]string{softtarget.KeyEncoding: "zip"}, "unknown soft-target encoding"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := softtarget.NewReader(bytes.NewReader(writeRawStream(t, m, tc.edit)), "x.arrows")
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "x.arrows: ") {
				t.Fatalf("got %v, want an error naming the input with %q", err, tc.want)
			}
		})
	}
}

func TestNotArrow(t *testing.T) {
	for _, tc := range []struct {
		name, data, want string
	}{
		{"empty", "", "empty input"},
		{"text", "hello world, not arrow", "not an Arrow IPC stream or file"},
		{"short", "\xff\xff", "truncated"},
	} {
		_, err := softtarget.NewReader(strings.NewReader(tc.data), "in")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	p := filepath.Join(t.TempDir(), "missing.arrow")
	if _, err := softtarget.Open(p); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("missing file: %v", err)
	}
}

func TestReaderCheckCompatible(t *testing.T) {
	m := softtargettest.Meta(3, softtarget.Encoding{})
	path := filepath.Join(t.TempDir(), "dump.arrow")
	w, err := softtarget.CreateFile(path, m)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := softtarget.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.CheckCompatible(m); err != nil {
		t.Fatal(err)
	}
	other := softtargettest.Meta(80, softtarget.Encoding{})
	other.TeacherConfigHash = "sha256:coco-teacher"
	err = r.CheckCompatible(other)
	for _, s := range []string{path + ": ", "teacher config hash", "3 classes", "expected 80"} {
		if err == nil || !strings.Contains(err.Error(), s) {
			t.Errorf("error %v lacks %q", err, s)
		}
	}
}

// replayMeta is softtargettest.Meta with recorded replay settings.
func replayMeta() softtarget.Meta {
	m := softtargettest.Meta(3, softtarget.Encoding{})
	m.Replay = map[string]string{
		"data.augment.mean":        "[0.485,0.456,0.406]",
		"data.augment.std":         "[0.229,0.224,0.225]",
		"data.augment.expand.fill": "[123,116,103]",
	}
	return m
}

// TestReplayRoundTrip: the replay settings survive a file and a stream
// exactly; nil (not recorded) and an empty map stay apart; the writer keeps
// its own copy of the map.
func TestReplayRoundTrip(t *testing.T) {
	cases := []struct {
		name   string
		replay map[string]string
	}{
		{"recorded", replayMeta().Replay},
		{"empty", map[string]string{}},
		{"not recorded", nil},
		{"odd text", map[string]string{"a.b": `"quoted" \ [1,2]`, "é": ""}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := softtargettest.Meta(3, softtarget.Encoding{})
			m.Replay = maps.Clone(tc.replay)
			path := filepath.Join(t.TempDir(), "st.arrow")
			w, err := softtarget.CreateFile(path, m)
			if err != nil {
				t.Fatal(err)
			}
			var stream bytes.Buffer
			sw, err := softtarget.NewStreamWriter(&stream, m)
			if err != nil {
				t.Fatal(err)
			}
			for k := range m.Replay {
				m.Replay[k] = "changed after NewWriter"
			}
			for _, w := range []*softtarget.Writer{w, sw} {
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
			}
			fr, err := softtarget.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer fr.Close()
			sr, err := softtarget.NewReader(&stream, "-")
			if err != nil {
				t.Fatal(err)
			}
			defer sr.Close()
			for _, got := range []softtarget.Meta{fr.Meta(), sr.Meta()} {
				if (got.Replay == nil) != (tc.replay == nil) || !maps.Equal(got.Replay, tc.replay) {
					t.Errorf("replay %#v, want %#v", got.Replay, tc.replay)
				}
			}
		})
	}
}

// TestOldFileHasNoReplay: a file without the replay key (written before it
// existed) reads with Replay nil, and CheckCompatible leaves the decision to
// the caller; a bad value is an error naming the key.
func TestOldFileHasNoReplay(t *testing.T) {
	m := replayMeta()
	r, err := softtarget.NewReader(bytes.NewReader(writeRawStream(t, m, map[string]string{softtarget.KeyReplay: ""})), "old.arrows")
	if err != nil {
		t.Fatal(err)
	}
	if r.Meta().Replay != nil {
		t.Errorf("replay %v from a file without %s", r.Meta().Replay, softtarget.KeyReplay)
	}
	if err := r.CheckCompatible(m); err != nil {
		t.Errorf("old file: %v", err)
	}
	for _, bad := range []string{"[1,2]", "null", `{"a":1}`, `{"":"x"}`} {
		_, err := softtarget.NewReader(bytes.NewReader(writeRawStream(t, m, map[string]string{softtarget.KeyReplay: bad})), "x.arrows")
		if err == nil || !strings.Contains(err.Error(), "x.arrows: ") || !(strings.Contains(err.Error(), softtarget.KeyReplay) || strings.Contains(err.Error(), "replay setting")) {
			t.Errorf("%s = %s: %v", softtarget.KeyReplay, bad, err)
		}
	}
}

func TestCheckCompatibleReplay(t *testing.T) {
	cases := []struct {
		name string
		got  func(m *softtarget.Meta) // the file's
		want func(w *softtarget.Meta) // the consumer's
		errs []string                 // substrings of the error; none: compatible
	}{
		{"same", nil, nil, nil},
		{"consumer does not check", nil, func(w *softtarget.Meta) { w.Replay = nil }, nil},
		{"file predates the check", func(m *softtarget.Meta) { m.Replay = nil }, nil, nil},
		{"file needs fewer settings", func(m *softtarget.Meta) { delete(m.Replay, "data.augment.expand.fill") }, func(w *softtarget.Meta) { w.Replay["data.augment.expand.fill"] = "[0,0,0]" }, nil},
		{"other mean", nil, func(w *softtarget.Meta) { w.Replay["data.augment.mean"] = "[0.5,0.5,0.5]" },
			[]string{"other augmentation settings", "data.augment.mean was [0.485,0.456,0.406] for the dump, this configuration has [0.5,0.5,0.5]"}},
		{"two settings differ, sorted", nil, func(w *softtarget.Meta) {
			w.Replay["data.augment.std"] = "[1,1,1]"
			w.Replay["data.augment.expand.fill"] = "[0,0,0]"
		},
			[]string{"data.augment.expand.fill was [123,116,103] for the dump, this configuration has [0,0,0]\ndata.augment.std was [0.229,0.224,0.225]"}},
		{"setting unknown here", func(m *softtarget.Meta) { m.Replay["data.augment.gamma"] = "2.2" }, nil,
			[]string{"replay setting data.augment.gamma = 2.2, which this program does not know"}},
		{"with another teacher", nil, func(w *softtarget.Meta) {
			w.Replay["data.augment.mean"] = "[0,0,0]"
			w.TeacherConfigHash = "sha256:other"
		},
			[]string{"data.augment.mean was", "do not match the expected teacher: teacher config hash"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, want := replayMeta(), replayMeta()
			if tc.got != nil {
				tc.got(&got)
			}
			if tc.want != nil {
				tc.want(&want)
			}
			err := got.CheckCompatible(want)
			if tc.errs == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, s := range tc.errs {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
		})
	}
}

package softtarget

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
)

func TestCheckCompatible(t *testing.T) {
	got := testMeta(3, Encoding{Half: true}, "c5")
	cases := []struct {
		name string
		edit func(w *Meta)
		want []string // substrings of the error; none: compatible
	}{
		{"same", func(w *Meta) {}, nil},
		{"encoding is not checked", func(w *Meta) { w.Encoding = Encoding{Kind: Sparse, Threshold: 0.3} }, nil},
		{"empty expectations", func(w *Meta) { *w = Meta{} }, nil},
		{"other teacher", func(w *Meta) { w.TeacherConfigHash = "sha256:other" }, []string{`teacher config hash is "sha256:teacher-abc", expected "sha256:other"`}},
		{"other class list", func(w *Meta) { w.Classes = []string{"class0", "dog", "class2"} }, []string{`class 1 is "class1", expected "dog"`}},
		{"other class count", func(w *Meta) { w.Classes = w.Classes[:2] }, []string{"3 classes", "expected 2"}},
		{"other anchor count", func(w *Meta) { w.Anchors = w.Anchors[:6]; w.Masks = [][]int{{3, 4, 5}, {0, 1, 2}} }, []string{"9 anchors, expected 6", "3 scales), expected", "(2 scales)"}},
		{"other anchors", func(w *Meta) { w.Anchors = append([][2]float64{{11, 13}}, w.Anchors[1:]...) }, []string{"anchors [[10 13]"}},
		{"missing feature", func(w *Meta) { w.Features = []string{"c4"} }, []string{`feature map "c4" is not stored`}},
		{"two differences at once", func(w *Meta) { w.TeacherConfigHash = "x"; w.Classes = []string{"a"} }, []string{"teacher config hash", "3 classes"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := testMeta(3, Encoding{Half: true}, "c5")
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

// writeRawStream writes an Arrow stream with the soft-target columns of m but
// the given schema metadata edits, and one trailer batch.
func writeRawStream(t *testing.T, m Meta, edit map[string]string) []byte {
	t.Helper()
	l := newLayout(m)
	md := l.schema.Metadata().ToMap()
	for k, v := range edit {
		if v == "" {
			delete(md, k)
		} else {
			md[k] = v
		}
	}
	mm := arrow.MetadataFrom(md)
	sc := arrow.NewSchema(l.schema.Fields(), &mm)
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(sc))
	cols := make([]colBuf, len(l.kinds))
	arrs := make([]arrow.Array, len(cols))
	for i := range cols {
		cols[i].reset()
		arrs[i] = cols[i].array(sc.Field(i).Type, l.kinds[i], 0)
	}
	rec := array.NewRecordBatchWithMetadata(sc, arrs, 0, trailerMetadata(nil, nil))
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	w.Close()
	return buf.Bytes()
}

func TestSchemaMetadataErrors(t *testing.T) {
	m := testMeta(2, Encoding{})
	if _, err := NewReader(bytes.NewReader(writeRawStream(t, m, nil)), "ok"); err != nil {
		t.Fatalf("unedited raw stream: %v", err)
	}
	cases := []struct {
		name string
		edit map[string]string
		want string
	}{
		{"newer version", map[string]string{KeyVersion: "2"}, "schema version 2, this program reads version 1"},
		{"not ours", map[string]string{KeyFormat: ""}, "not a soft-target file"},
		{"no teacher hash", map[string]string{KeyTeacher: ""}, "no " + KeyTeacher},
		{"bad classes", map[string]string{KeyClasses: "[1,"}, KeyClasses},
		{"channels disagree", map[string]string{KeyChannels: "[21,21,22]"}, "scale 2 has 22 channels"},
		{"encoding vs columns", map[string]string{KeyEncoding: "dense16"}, "columns do not match"},
		{"unknown encoding", map[string]string{KeyEncoding: "zip"}, "unknown soft-target encoding"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewReader(bytes.NewReader(writeRawStream(t, m, tc.edit)), "x.arrows")
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
		_, err := NewReader(strings.NewReader(tc.data), "in")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	p := filepath.Join(t.TempDir(), "missing.arrow")
	if _, err := Open(p); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("missing file: %v", err)
	}
}

func TestReaderCheckCompatible(t *testing.T) {
	m := testMeta(3, Encoding{})
	path := filepath.Join(t.TempDir(), "dump.arrow")
	w, err := CreateFile(path, m)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.CheckCompatible(m); err != nil {
		t.Fatal(err)
	}
	other := testMeta(80, Encoding{})
	other.TeacherConfigHash = "sha256:coco-teacher"
	err = r.CheckCompatible(other)
	for _, s := range []string{path + ": ", "teacher config hash", "3 classes", "expected 80"} {
		if err == nil || !strings.Contains(err.Error(), s) {
			t.Errorf("error %v lacks %q", err, s)
		}
	}
}

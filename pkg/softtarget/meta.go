package softtarget

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"yolodistill/pkg/anchor"
)

// FormatName identifies the format in the schema metadata.
const FormatName = "yolodistill-softtarget"

// Version is the schema version this package writes. It reads versions
// MinVersion to Version:
//   - 1: the columns of the package doc without view_sha256;
//   - 2: adds view_sha256, the SHA-256 of each view's input pixels (see
//     View.PixelHash), so that a reader can verify that the view it rebuilds
//     is the one the teacher saw. A version 1 file reads with PixelHash nil:
//     its views cannot be verified (student-train says so once).
const Version = 2

// MinVersion is the oldest schema version this package reads.
const MinVersion = 1

// PixelHashSize is the length of View.PixelHash when recorded.
const PixelHashSize = 32

// Schema metadata keys.
const (
	KeyFormat       = "softtarget.format"  // FormatName
	KeyVersion      = "softtarget.version" // decimal Version
	KeyTeacher      = "softtarget.teacher_config_hash"
	KeyClasses      = "softtarget.classes"       // JSON array of strings
	KeyAnchors      = "softtarget.anchors"       // JSON [[w,h],...], pixels
	KeyMasks        = "softtarget.masks"         // JSON [[6,7,8],...], per scale, deepest first
	KeyChannels     = "softtarget.channels"      // JSON [A_s*(5+C),...]
	KeyEncoding     = "softtarget.encoding"      // dense32 | dense16 | sparse32 | sparse16
	KeyThreshold    = "softtarget.threshold"     // sparse: objectness probability threshold
	KeyFeatures     = "softtarget.features"      // JSON array of feature names
	KeyReplay       = "softtarget.replay"        // JSON object, setting name -> value text (Meta.Replay); absent in older files
	KeyData         = "softtarget.data"          // JSON object, setting name -> value text (Meta.Data); optional, informative
	KeyTeacherModel = "softtarget.teacher_model" // text the teacher config hash hashes (Meta.TeacherModel); optional, informative
	KeyTrailer      = "softtarget.trailer"       // trailer batch: number of views
	KeyBatchRows    = "softtarget.batch_rows"    // trailer batch: rows per data batch, comma-separated
	KeyIndex        = "softtarget.index"         // trailer batch: "id:view" per row, space-separated
	maxScaleCount   = 16
)

// Kind is how head outputs are stored.
type Kind int

const (
	Dense  Kind = iota // every logit
	Sparse             // objectness everywhere, box and class where confident
)

// Encoding is the storage form of head outputs and feature maps.
type Encoding struct {
	Kind Kind
	// Half stores values as IEEE binary16 (round to nearest even, subnormals
	// kept); otherwise float32. Feature maps follow Half too.
	Half bool
	// Threshold (Sparse only) is the objectness probability, in [0, 1), from
	// which a cell's box and class logits are stored: sigmoid(obj) >= Threshold.
	// 0 stores every cell.
	Threshold float64
}

// String gives the metadata name: dense32, dense16, sparse32 or sparse16.
func (e Encoding) String() string {
	k := "dense"
	if e.Kind == Sparse {
		k = "sparse"
	}
	if e.Half {
		return k + "16"
	}
	return k + "32"
}

// ParseEncoding parses dense32, dense16, sparse32 or sparse16; threshold is
// used for the sparse forms.
func ParseEncoding(name string, threshold float64) (Encoding, error) {
	var e Encoding
	switch name {
	case "dense32":
	case "dense16":
		e.Half = true
	case "sparse32":
		e.Kind = Sparse
	case "sparse16":
		e.Kind, e.Half = Sparse, true
	default:
		return e, fmt.Errorf("unknown soft-target encoding %q (want dense32, dense16, sparse32 or sparse16)", name)
	}
	if e.Kind == Sparse {
		e.Threshold = threshold
	}
	return e, e.validate()
}

func (e Encoding) validate() error {
	if e.Kind != Dense && e.Kind != Sparse {
		return fmt.Errorf("unknown encoding kind %d", e.Kind)
	}
	if e.Kind == Sparse && !(e.Threshold >= 0 && e.Threshold < 1) {
		return fmt.Errorf("sparse threshold %v outside [0, 1)", e.Threshold)
	}
	return nil
}

// logitThreshold is logit(Threshold); -Inf for 0.
func (e Encoding) logitThreshold() float64 {
	if e.Threshold <= 0 {
		return math.Inf(-1)
	}
	return math.Log(e.Threshold / (1 - e.Threshold))
}

// Meta describes a soft-target file: what teacher produced it and how it is
// encoded. It lives in the Arrow schema metadata.
type Meta struct {
	Version           int             // set by readers; writers always write Version
	TeacherConfigHash string          // hash of the teacher's config (who computes it decides the form)
	Classes           []string        // class names; C = len(Classes)
	Anchors           []anchor.Anchor // all anchors, (w, h) in input pixels
	Masks             [][]int         // per scale, deepest (stride 32) first: indices into Anchors
	Encoding          Encoding
	Features          []string // names of stored feature maps, in column order
	// Replay holds the settings, outside each view's augmentation record,
	// that rebuilding the views' pixels depends on (pkg/dataset's
	// augment.Config.ReplaySettings): setting name -> canonical value text,
	// compared as strings. nil: not recorded (files written before the key
	// existed; the key is absent). Writers record every setting their views
	// can depend on, and only those.
	Replay map[string]string
	// Data describes where the views' images came from (the writer's data
	// settings, e.g. "data.root", "data.synth.seed": setting name -> value
	// text). It is informative, never compared by CheckCompatible (a dataset
	// may live in another folder on another machine): a reader that finds a
	// view whose pixels differ from the teacher's (View.PixelHash) names the
	// settings that differ. nil: not recorded.
	Data map[string]string
	// TeacherModel is the text TeacherConfigHash hashes (the teacher's
	// model section and classes, config.Config.ModelText), so that a reader
	// whose teacher has another hash can name the keys that differ.
	// Informative, never compared by CheckCompatible. "": not recorded.
	TeacherModel string
}

// HasPixelHashes reports whether the file's views carry View.PixelHash
// (schema version 2 and later).
func (m Meta) HasPixelHashes() bool { return m.Version >= 2 }

// NumScales is len(Masks).
func (m *Meta) NumScales() int { return len(m.Masks) }

// Channels is the channel count of scale s's head output: A_s*(5+C).
func (m *Meta) Channels(s int) int { return len(m.Masks[s]) * (5 + len(m.Classes)) }

func (m *Meta) validate() error {
	if len(m.Classes) == 0 {
		return errors.New("no classes")
	}
	if len(m.Masks) == 0 || len(m.Masks) > maxScaleCount {
		return fmt.Errorf("%d scales (masks), want 1..%d", len(m.Masks), maxScaleCount)
	}
	for s, mk := range m.Masks {
		if len(mk) == 0 {
			return fmt.Errorf("scale %d has an empty anchor mask", s)
		}
		for _, a := range mk {
			if a < 0 || a >= len(m.Anchors) {
				return fmt.Errorf("scale %d mask names anchor %d of %d", s, a, len(m.Anchors))
			}
		}
	}
	for k := range m.Replay {
		if k == "" {
			return errors.New("empty replay setting name")
		}
	}
	for k := range m.Data {
		if k == "" {
			return errors.New("empty data setting name")
		}
	}
	seen := map[string]bool{}
	for _, f := range m.Features {
		if f == "" || strings.ContainsAny(f, "\x00") {
			return fmt.Errorf("bad feature name %q", f)
		}
		if seen[f] {
			return fmt.Errorf("feature %q named twice", f)
		}
		seen[f] = true
	}
	return m.Encoding.validate()
}

func (m *Meta) metadata() (keys, vals []string) {
	js := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			panic(err) // plain slices of strings and numbers always marshal
		}
		return string(b)
	}
	ch := make([]int, m.NumScales())
	for s := range ch {
		ch[s] = m.Channels(s)
	}
	feats := m.Features
	if feats == nil {
		feats = []string{}
	}
	keys = []string{KeyFormat, KeyVersion, KeyTeacher, KeyClasses, KeyAnchors, KeyMasks, KeyChannels, KeyEncoding, KeyThreshold, KeyFeatures}
	vals = []string{FormatName, strconv.Itoa(m.Version), m.TeacherConfigHash, js(m.Classes), js(m.Anchors), js(m.Masks), js(ch),
		m.Encoding.String(), strconv.FormatFloat(m.Encoding.Threshold, 'g', -1, 64), js(feats)}
	if m.Replay != nil {
		keys, vals = append(keys, KeyReplay), append(vals, js(m.Replay)) // encoding/json sorts map keys
	}
	if m.Data != nil {
		keys, vals = append(keys, KeyData), append(vals, js(m.Data))
	}
	if m.TeacherModel != "" {
		keys, vals = append(keys, KeyTeacherModel), append(vals, m.TeacherModel)
	}
	return keys, vals
}

// parseMeta reads and checks schema metadata; keys and vals are parallel.
func parseMeta(get func(string) (string, bool)) (Meta, error) {
	var m Meta
	must := func(k string) (string, error) {
		v, ok := get(k)
		if !ok {
			return "", fmt.Errorf("schema metadata has no %s", k)
		}
		return v, nil
	}
	f, ok := get(KeyFormat)
	if !ok || f != FormatName {
		return m, fmt.Errorf("not a soft-target file (schema metadata %s = %q, want %q)", KeyFormat, f, FormatName)
	}
	v, err := must(KeyVersion)
	if err != nil {
		return m, err
	}
	m.Version, err = strconv.Atoi(v)
	if err != nil {
		return m, fmt.Errorf("bad schema version %q", v)
	}
	if m.Version < MinVersion || m.Version > Version {
		return m, fmt.Errorf("soft-target schema version %d, this program reads versions %d to %d (written by a newer teacher-dump? update this program)", m.Version, MinVersion, Version)
	}
	if m.TeacherConfigHash, err = must(KeyTeacher); err != nil {
		return m, err
	}
	for _, kv := range []struct {
		key string
		dst any
	}{{KeyClasses, &m.Classes}, {KeyAnchors, &m.Anchors}, {KeyMasks, &m.Masks}, {KeyFeatures, &m.Features}} {
		s, err := must(kv.key)
		if err != nil {
			return m, err
		}
		if err := json.Unmarshal([]byte(s), kv.dst); err != nil {
			return m, fmt.Errorf("schema metadata %s: %v", kv.key, err)
		}
	}
	if len(m.Features) == 0 {
		m.Features = nil
	}
	if s, ok := get(KeyReplay); ok {
		if err := json.Unmarshal([]byte(s), &m.Replay); err != nil {
			return m, fmt.Errorf("schema metadata %s: %v", KeyReplay, err)
		}
		if m.Replay == nil { // "null"
			return m, fmt.Errorf("schema metadata %s: %q is not a JSON object", KeyReplay, s)
		}
	}
	m.TeacherModel, _ = get(KeyTeacherModel)
	if s, ok := get(KeyData); ok {
		if err := json.Unmarshal([]byte(s), &m.Data); err != nil || m.Data == nil {
			return m, fmt.Errorf("schema metadata %s: %q is not a JSON object of strings", KeyData, s)
		}
	}
	enc, err := must(KeyEncoding)
	if err != nil {
		return m, err
	}
	th, err := must(KeyThreshold)
	if err != nil {
		return m, err
	}
	thr, err := strconv.ParseFloat(th, 64)
	if err != nil {
		return m, fmt.Errorf("schema metadata %s: %v", KeyThreshold, err)
	}
	if m.Encoding, err = ParseEncoding(enc, thr); err != nil {
		return m, err
	}
	if err := m.validate(); err != nil {
		return m, err
	}
	chs, err := must(KeyChannels)
	if err != nil {
		return m, err
	}
	var ch []int
	if err := json.Unmarshal([]byte(chs), &ch); err != nil {
		return m, fmt.Errorf("schema metadata %s: %v", KeyChannels, err)
	}
	if len(ch) != m.NumScales() {
		return m, fmt.Errorf("schema metadata %s lists %d scales, masks %d", KeyChannels, len(ch), m.NumScales())
	}
	for s, c := range ch {
		if c != m.Channels(s) {
			return m, fmt.Errorf("schema metadata %s: scale %d has %d channels, anchors and classes give %d", KeyChannels, s, c, m.Channels(s))
		}
	}
	return m, nil
}

// CheckCompatible reports, in one error, every way m differs from what a
// consumer expects. Fields of want left empty are not checked: an empty
// TeacherConfigHash, nil Classes, nil Anchors, nil Masks, nil Replay. Every
// name in want.Features must be stored. The encoding is never checked.
//
// With want.Replay, every setting m.Replay records must be in want.Replay with
// the same value (settings m does not record are ones its views do not depend
// on). When m.Replay is nil (a file from before the settings were recorded)
// nothing can be compared and nothing is reported: the caller decides (see
// Meta.Replay).
func (m Meta) CheckCompatible(want Meta) error {
	var errs, replay []error
	if want.Replay != nil && m.Replay != nil {
		for _, k := range slices.Sorted(maps.Keys(m.Replay)) {
			v := m.Replay[k]
			w, ok := want.Replay[k]
			switch {
			case !ok:
				replay = append(replay, fmt.Errorf("the views were made with replay setting %s = %s, which this program does not know (dumped by a newer teacher-dump?)", k, v))
			case v != w:
				replay = append(replay, fmt.Errorf("%s was %s for the dump, this configuration has %s", k, v, w))
			}
		}
	}
	if want.TeacherConfigHash != "" && want.TeacherConfigHash != m.TeacherConfigHash {
		errs = append(errs, fmt.Errorf("teacher config hash is %q, expected %q (dumped with another teacher config)", m.TeacherConfigHash, want.TeacherConfigHash))
	}
	if want.Classes != nil {
		switch {
		case len(want.Classes) != len(m.Classes):
			errs = append(errs, fmt.Errorf("%d classes %s, expected %d %s", len(m.Classes), quoteList(m.Classes), len(want.Classes), quoteList(want.Classes)))
		case !slices.Equal(want.Classes, m.Classes):
			for i := range want.Classes {
				if want.Classes[i] != m.Classes[i] {
					errs = append(errs, fmt.Errorf("class %d is %q, expected %q (another class list)", i, m.Classes[i], want.Classes[i]))
					break
				}
			}
		}
	}
	if want.Anchors != nil {
		switch {
		case len(want.Anchors) != len(m.Anchors):
			errs = append(errs, fmt.Errorf("%d anchors, expected %d", len(m.Anchors), len(want.Anchors)))
		case !slices.Equal(want.Anchors, m.Anchors):
			errs = append(errs, fmt.Errorf("anchors %v, expected %v", m.Anchors, want.Anchors))
		}
	}
	if want.Masks != nil {
		same := len(want.Masks) == len(m.Masks)
		for s := 0; same && s < len(m.Masks); s++ {
			same = slices.Equal(want.Masks[s], m.Masks[s])
		}
		if !same {
			errs = append(errs, fmt.Errorf("anchor masks %v (%d scales), expected %v (%d scales)", m.Masks, len(m.Masks), want.Masks, len(want.Masks)))
		}
	}
	for _, f := range want.Features {
		if !slices.Contains(m.Features, f) {
			errs = append(errs, fmt.Errorf("feature map %q is not stored (stored: %s)", f, quoteList(m.Features)))
		}
	}
	var out []error
	if len(replay) > 0 {
		out = append(out, fmt.Errorf("soft targets were dumped with other augmentation settings (their views would be rebuilt with other pixels than the teacher saw): %w", errors.Join(replay...)))
	}
	if len(errs) > 0 {
		out = append(out, fmt.Errorf("soft targets do not match the expected teacher: %w", errors.Join(errs...)))
	}
	return errors.Join(out...)
}

func quoteList(s []string) string {
	const max = 8
	q := make([]string, 0, max+1)
	for i, x := range s {
		if i == max {
			q = append(q, fmt.Sprintf("... %d more", len(s)-max))
			break
		}
		q = append(q, strconv.Quote(x))
	}
	return "[" + strings.Join(q, " ") + "]"
}

package config

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// LoadTeacher loads this student's teacher: the file distill.teacher names
// (TeacherPath), or teacherPath when not "" (student-train's -t), with
// distill.teacher_overrides and then extra applied, in that order. It is the
// one rule every tool that checks a teacher's model hash follows. The
// returned configuration's Path is the file; an error names it.
func (c *Config) LoadTeacher(teacherPath string, extra []string) (*Config, error) {
	if teacherPath == "" {
		teacherPath = c.TeacherPath()
	}
	if teacherPath == "" {
		return nil, fmt.Errorf("%s: no teacher (distill.teacher is empty)", c.Path)
	}
	return Load(teacherPath, append(slices.Clone(c.Distill.TeacherOverrides), extra...))
}

// ModelText is the text ModelHash hashes: the model section and the class
// names, one key per line ("model:", "  num_classes: 3", ..., "classes: [...]").
// Soft targets record it so that a mismatch can name the keys that differ.
func (c *Config) ModelText() string {
	var b strings.Builder
	b.WriteString(modelHashVersion)
	b.WriteString("model:\n")
	emitStruct(&b, reflect.ValueOf(c.Model), 1)
	b.WriteString("classes: ")
	emitFlow(&b, reflect.ValueOf(c.Data.Classes))
	b.WriteString("\n")
	return b.String()
}

// ModelDiff is one key whose value differs between two ModelTexts: Key is
// the dotted key ("model.num_classes", "data.classes"), A and B the values
// as YAML flow text ("" when a side leaves the key out at its default), fit
// for an -o KEY=VALUE override.
type ModelDiff struct {
	Key, A, B string
}

// DiffModelText lists the keys whose values differ between two ModelTexts,
// in the order of a's text (keys only b has last). Texts of another hash
// version compare as far as their lines go.
func DiffModelText(a, b string) []ModelDiff {
	pa, ka := modelLines(a)
	pb, kb := modelLines(b)
	var out []ModelDiff
	for _, k := range ka {
		if pa[k] != pb[k] {
			out = append(out, ModelDiff{Key: k, A: pa[k], B: pb[k]})
		}
	}
	for _, k := range kb {
		if _, ok := pa[k]; !ok {
			out = append(out, ModelDiff{Key: k, A: "", B: pb[k]})
		}
	}
	return out
}

// modelLines maps each key of a ModelText to its value text, with the keys
// in order.
func modelLines(text string) (map[string]string, []string) {
	m := map[string]string{}
	var keys []string
	for _, line := range strings.Split(text, "\n") {
		var key string
		switch {
		case strings.HasPrefix(line, "  "):
			key = "model."
			line = strings.TrimSpace(line)
		case strings.HasPrefix(line, "classes:"):
			key = "data."
		default:
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		key += k
		if _, dup := m[key]; !dup {
			keys = append(keys, key)
		}
		m[key] = strings.TrimSpace(v)
	}
	return m, keys
}

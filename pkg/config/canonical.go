package config

import (
	"crypto/sha256"
	"encoding/hex"
	"math"
	"reflect"
	"strconv"
	"strings"
)

// YAML returns the canonical serialisation of c: every key in struct order,
// two-space indentation, strings double-quoted, lists of scalars in flow
// style, numbers in Go's shortest round-trip form. Parse(c.YAML()) gives back
// an equal configuration, and equal configurations give identical bytes;
// checkpoints store this text. Path is not included.
func (c *Config) YAML() []byte {
	var b strings.Builder
	emitStruct(&b, reflect.ValueOf(*c), 0)
	return []byte(b.String())
}

// modelHashVersion changes whenever what ModelHash covers changes meaning.
const modelHashVersion = "yolodistill-model-hash-v1\n"

// ModelHash is a stable hex SHA-256 of the model-relevant part of c: the
// model section and the class names (their order fixes the meaning of the
// class outputs). It differs between configurations whose networks or
// outputs differ, and does not change with training, data augmentation,
// evaluation or distillation settings. Soft-target files carry the teacher's
// hash; a student checks it against its teacher configuration.
func (c *Config) ModelHash() string {
	sum := sha256.Sum256([]byte(c.ModelText()))
	return hex.EncodeToString(sum[:])
}

func emitStruct(b *strings.Builder, v reflect.Value, depth int) {
	t := v.Type()
	ind := strings.Repeat("  ", depth)
	for i := 0; i < t.NumField(); i++ {
		name := yamlName(t.Field(i))
		if name == "" {
			continue
		}
		f := v.Field(i)
		if f.IsZero() && strings.Contains(t.Field(i).Tag.Get("yaml"), ",omitempty") {
			// Keys added after files were pinned (model.layout) are left out at
			// their default, so that the text and ModelHash of every earlier
			// configuration stay the same.
			continue
		}
		b.WriteString(ind)
		b.WriteString(name)
		b.WriteString(":")
		emitValue(b, f, depth)
	}
}

// emitValue writes the value part after "key:" (including the newline).
func emitValue(b *strings.Builder, f reflect.Value, depth int) {
	switch {
	case f.Kind() == reflect.Struct:
		b.WriteString("\n")
		emitStruct(b, f, depth+1)
	case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.Struct:
		if f.Len() == 0 {
			b.WriteString(" []\n")
			return
		}
		b.WriteString("\n")
		ind := strings.Repeat("  ", depth+1)
		for j := 0; j < f.Len(); j++ {
			// "- " then the element's fields, the first on the dash line.
			var eb strings.Builder
			emitStruct(&eb, f.Index(j), 0)
			lines := strings.Split(strings.TrimSuffix(eb.String(), "\n"), "\n")
			for k, line := range lines {
				if k == 0 {
					b.WriteString(ind + "- " + line + "\n")
				} else {
					b.WriteString(ind + "  " + line + "\n")
				}
			}
		}
	default:
		b.WriteString(" ")
		emitFlow(b, f)
		b.WriteString("\n")
	}
}

// emitFlow writes a scalar or a list of scalars / lists in flow style.
func emitFlow(b *strings.Builder, f reflect.Value) {
	switch f.Kind() {
	case reflect.Pointer:
		if f.IsNil() {
			b.WriteString("null")
			return
		}
		emitFlow(b, f.Elem())
	case reflect.String:
		b.WriteString(strconv.Quote(f.String()))
	case reflect.Bool:
		b.WriteString(strconv.FormatBool(f.Bool()))
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		b.WriteString(strconv.FormatInt(f.Int(), 10))
	case reflect.Float32, reflect.Float64:
		b.WriteString(formatFloat(f.Float()))
	case reflect.Slice, reflect.Array:
		b.WriteString("[")
		for j := 0; j < f.Len(); j++ {
			if j > 0 {
				b.WriteString(", ")
			}
			emitFlow(b, f.Index(j))
		}
		b.WriteString("]")
	case reflect.Struct:
		b.WriteString("{")
		t := f.Type()
		first := true
		for i := 0; i < t.NumField(); i++ {
			name := yamlName(t.Field(i))
			if name == "" {
				continue
			}
			if !first {
				b.WriteString(", ")
			}
			first = false
			b.WriteString(name + ": ")
			emitFlow(b, f.Field(i))
		}
		b.WriteString("}")
	default:
		b.WriteString("null")
	}
}

// formatFloat writes f in the shortest form that parses back to f; YAML
// reads "1e-05" and "100" as numbers.
func formatFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return ".nan"
	case math.IsInf(f, 1):
		return ".inf"
	case math.IsInf(f, -1):
		return "-.inf"
	}
	s := strconv.FormatFloat(f, 'g', -1, 64)
	if i := strings.IndexByte(s, 'e'); i >= 0 && !strings.Contains(s[:i], ".") {
		s = s[:i] + ".0" + s[i:] // "1.0e-05": a float to YAML 1.1 readers too
	}
	return s
}

package config

import (
	"reflect"
	"sort"
	"strings"
	"sync"
)

// indexPlaceholder stands for a list index in the key catalogue.
const indexPlaceholder = "N"

var (
	keysOnce sync.Once
	keyList  []string                // every dotted key, indexes as "N"
	keyTypes map[string]reflect.Type // dotted key (indexes as "N") -> field type
)

func buildKeys() {
	keyTypes = map[string]reflect.Type{}
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		if prefix != "" {
			keyTypes[prefix] = t
			keyList = append(keyList, prefix)
		}
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		switch t.Kind() {
		case reflect.Struct:
			for i := 0; i < t.NumField(); i++ {
				if name := yamlName(t.Field(i)); name != "" {
					walk(t.Field(i).Type, joinKey(prefix, name))
				}
			}
		case reflect.Slice, reflect.Array:
			if e := t.Elem(); e.Kind() == reflect.Struct {
				walk(e, prefix+"."+indexPlaceholder)
			}
		}
	}
	walk(reflect.TypeOf(Config{}), "")
	sort.Strings(keyList)
}

// Keys returns every dotted configuration key in sorted order, including
// the sections themselves ("train") and, for lists of mappings, keys with
// "N" standing for a list index ("distill.pairs.N.kind").
func Keys() []string {
	keysOnce.Do(buildKeys)
	return append([]string(nil), keyList...)
}

// normKey replaces numeric segments of a dotted key by "N" and returns the
// indexes it replaced, in order.
func normKey(key string) (string, []string) {
	segs := strings.Split(key, ".")
	var idx []string
	for i, s := range segs {
		if _, ok := isIndex(s); ok {
			idx = append(idx, s)
			segs[i] = indexPlaceholder
		}
	}
	return strings.Join(segs, "."), idx
}

// Nearest returns the known key closest to key (Levenshtein distance over
// the whole dotted key; a known key that ends with ".key" wins, for a
// forgotten section prefix). List indexes typed in key are kept.
func Nearest(key string) string {
	keysOnce.Do(buildKeys)
	norm, idx := normKey(key)
	best, bestD := "", 1<<30
	for _, k := range keyList {
		d := levenshtein(norm, k)
		if strings.HasSuffix(k, "."+norm) {
			d = 0
		}
		if d < bestD || (d == bestD && len(k) < len(best)) {
			best, bestD = k, d
		}
	}
	// Put the typed indexes back in place of the placeholders.
	segs := strings.Split(best, ".")
	j := 0
	for i, s := range segs {
		if s == indexPlaceholder {
			if j < len(idx) {
				segs[i] = idx[j]
				j++
			} else {
				segs[i] = "0"
			}
		}
	}
	return strings.Join(segs, ".")
}

// suggestion is the "; did you mean X?" tail of an unknown-key message.
func suggestion(key string) string {
	n := Nearest(key)
	if n == "" || n == key {
		return ""
	}
	return "; did you mean " + n + "?"
}

// childKeys lists the direct child key names of the mapping at key.
func childKeys(key string) []string {
	keysOnce.Do(buildKeys)
	norm, _ := normKey(key)
	var out []string
	for _, k := range keyList {
		if rest, ok := strings.CutPrefix(k, norm+"."); ok && !strings.Contains(rest, ".") && rest != indexPlaceholder {
			out = append(out, rest)
		}
	}
	return out
}

// levenshtein is the edit distance (insert, delete, substitute) of a and b
// over bytes.
func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c++
			}
			c = min(c, prev[j]+1, cur[j-1]+1)
			cur[j] = c
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

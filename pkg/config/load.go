package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"github.com/goccy/go-yaml/ast"
)

// isBaseKey reports whether a top-level key names files this one inherits
// from: "_base_", or PaddleDetection's "_BASE_".
func isBaseKey(k string) bool { return k == "_base_" || k == "_BASE_" }

type baseRef struct {
	path string
	node ast.Node
}

// basePaths reads the value of a base key: one path or a list of paths.
func (d *decoder) basePaths(n ast.Node, key string) ([]baseRef, error) {
	vn, err := d.resolve(n, key)
	if err != nil {
		return nil, err
	}
	items := []ast.Node{vn}
	if seq, ok := vn.(*ast.SequenceNode); ok {
		items = seq.Values
	}
	var out []baseRef
	for _, it := range items {
		it, err := d.resolve(it, key)
		if err != nil {
			return nil, err
		}
		s, ok := it.(*ast.StringNode)
		if !ok || s.Value == "" {
			return nil, d.errAt(it, key, "want a file path or a list of them, got %s", nodeDesc(it))
		}
		out = append(out, baseRef{path: s.Value, node: it})
	}
	return out, nil
}

// maxBaseDepth bounds `_base_` chains.
const maxBaseDepth = 8

// Load builds a configuration: Defaults, then the YAML file at path (after
// the files it inherits from: a top-level `_base_` (or `_BASE_`) key holding
// a path or a list of paths relative to the file, merged in order), then
// each override
// "key=value" in order, then Validate. Every error is an *Error (or a
// joined list of them from Validate) naming the file, the position where one
// applies, and the key.
func Load(path string, overrides []string) (*Config, error) {
	c := Defaults()
	if err := c.mergeFile(path, 0, nil); err != nil {
		return nil, err
	}
	c.Path = path
	return c.finish(overrides)
}

// Parse is Load for configuration text already in memory (a checkpoint's
// stored configuration, a test); name is used in messages and as Path.
// A `_base_` key resolves relative to name's folder.
func Parse(src []byte, name string, overrides []string) (*Config, error) {
	c := Defaults()
	if err := c.mergeBytes(src, name, 0, nil); err != nil {
		return nil, err
	}
	c.Path = name
	return c.finish(overrides)
}

func (c *Config) finish(overrides []string) (*Config, error) {
	byKey := map[string]string{}
	for _, o := range overrides {
		if err := c.Override(o); err != nil {
			return nil, err
		}
		k, _, _ := strings.Cut(o, "=")
		byKey[strings.TrimSpace(k)] = "-o " + o
	}
	if err := c.validate(byKey); err != nil {
		return nil, err
	}
	c.overrides = byKey
	return c, nil
}

func (c *Config) mergeFile(path string, depth int, visiting []string) error {
	src, err := os.ReadFile(path)
	if err != nil {
		msg := "cannot read config"
		var pe *os.PathError
		if errors.As(err, &pe) {
			msg += ": " + pe.Err.Error()
		} else {
			msg += ": " + err.Error()
		}
		return &Error{File: path, Msg: msg, Err: err}
	}
	return c.mergeBytes(src, path, depth, visiting)
}

func (c *Config) mergeBytes(src []byte, file string, depth int, visiting []string) error {
	body, err := parseYAML(src, file)
	if err != nil {
		return err
	}
	if body == nil {
		return nil // an empty file: defaults (or the base) unchanged
	}
	d := &decoder{file: file}
	body, err = d.resolve(body, "")
	if err != nil || body == nil {
		return err
	}
	pairs, err := d.mappingPairs(body, "")
	if err != nil {
		return err
	}
	root := reflect.ValueOf(c).Elem()
	seen := map[string]bool{}
	for _, p := range pairs {
		if !isBaseKey(p.key) {
			continue
		}
		bases, err := d.basePaths(p.value, p.key)
		if err != nil {
			return err
		}
		for _, bn := range bases {
			base := bn.path
			if !filepath.IsAbs(base) {
				base = filepath.Join(filepath.Dir(file), base)
			}
			for _, v := range visiting {
				if v == base {
					return d.errAt(bn.node, p.key, "inheritance cycle through %s", base)
				}
			}
			if depth >= maxBaseDepth {
				return d.errAt(bn.node, p.key, "more than %d levels of %s", maxBaseDepth, p.key)
			}
			if err := c.mergeFile(base, depth+1, append(visiting, file)); err != nil {
				return err
			}
		}
	}
	for _, p := range pairs {
		if isBaseKey(p.key) {
			continue
		}
		if seen[p.key] {
			return d.errAt(p.keyNode, p.key, "duplicate key")
		}
		seen[p.key] = true
		fi, ok := fieldByYAML(root.Type(), p.key)
		if !ok {
			return d.errAt(p.keyNode, p.key, "unknown key%s", suggestion(p.key))
		}
		if err := d.assign(root.Field(fi), p.value, p.key); err != nil {
			return err
		}
	}
	return nil
}

// Override applies one "key=value" override: key is a dotted key (numeric
// segments index lists, e.g. "model.anchors.0" or "distill.pairs.1.kind");
// value is parsed as YAML and must fit the field's type. A mapping value
// merges into a section; a list value replaces the whole list. The
// configuration is not re-validated (Load does that after all overrides).
func (c *Config) Override(arg string) error {
	file := "-o " + arg
	key, value, ok := strings.Cut(arg, "=")
	key = strings.TrimSpace(key)
	if !ok || key == "" {
		return &Error{File: file, Msg: "want key=value"}
	}
	return c.set(key, value, file)
}

// Set is Override with the key and the YAML value apart.
func (c *Config) Set(key, value string) error {
	return c.set(key, value, "-o "+key+"="+value)
}

func (c *Config) set(key, value, file string) error {
	cur, err := c.lookup(key, file, true)
	if err != nil {
		return err
	}
	if strings.TrimSpace(value) == "" {
		if cur.Kind() == reflect.String {
			cur.SetString("")
			return nil
		}
		return &Error{File: file, Key: key, Msg: "empty value; want " + kindName(cur.Type())}
	}
	node, err := parseYAML([]byte(value), file)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			e.Line, e.Col, e.Key = 0, 0, key
		}
		return err
	}
	if node == nil { // only a comment
		return &Error{File: file, Key: key, Msg: "empty value; want " + kindName(cur.Type())}
	}
	d := &decoder{file: file}
	if err := d.assign(cur, node, key); err != nil {
		var e *Error
		if errors.As(err, &e) {
			e.Line, e.Col = 0, 0 // positions inside a one-line value mean nothing
		}
		return err
	}
	return nil
}

// TeacherPath is distill.teacher resolved against the configuration's
// folder (BaseDir; "" when no teacher is configured).
func (c *Config) TeacherPath() string {
	t, dir := c.Distill.Teacher, c.BaseDir()
	if t == "" || filepath.IsAbs(t) || dir == "" {
		return t
	}
	return filepath.Join(dir, t)
}

// BaseDir is the folder relative paths inside the configuration resolve
// against: Dir when set, else Path's folder ("" without either).
func (c *Config) BaseDir() string {
	if c.Dir != "" {
		return c.Dir
	}
	if c.Path == "" {
		return ""
	}
	return filepath.Dir(c.Path)
}

// StoredDir returns the folder a checkpoint's stored configuration should
// resolve relative paths against later (its meta "config_dir"): BaseDir made
// absolute, "" when there is none.
func (c *Config) StoredDir() string {
	d := c.BaseDir()
	if d == "" {
		return ""
	}
	if a, err := filepath.Abs(d); err == nil {
		return a
	}
	return ""
}

// ParseStored is Parse for the configuration stored in the checkpoint at
// path: Path is "PATH (stored configuration)", and relative paths resolve
// against dir (the checkpoint's meta "config_dir", the folder of the file
// the run started from) when that folder exists, else against the
// checkpoint's folder.
func ParseStored(src []byte, path, dir string, overrides []string) (*Config, error) {
	c, err := Parse(src, path+" (stored configuration)", overrides)
	if err != nil {
		return nil, err
	}
	c.stored = true
	if dir != "" {
		if st, err := os.Stat(dir); err == nil && st.IsDir() {
			c.Dir = dir
		}
	}
	return c, nil
}

// Stored reports whether the configuration came from a checkpoint
// (ParseStored).
func (c *Config) Stored() bool { return c.stored }

// Get returns a copy of the value at a dotted key (numeric segments index
// lists), with the field's Go type: float64, int, int64, bool, string,
// []int, [][2]float64, a section struct, and so on.
func (c *Config) Get(key string) (any, error) {
	v, err := c.lookup(key, "", false)
	if err != nil {
		return nil, err
	}
	return v.Interface(), nil
}

// lookup walks a dotted key from the root. With alloc, nil pointers on the
// way are allocated (for Set); without, a nil pointer ends the walk there.
func (c *Config) lookup(key, file string, alloc bool) (reflect.Value, error) {
	cur := reflect.ValueOf(c).Elem()
	segs := strings.Split(key, ".")
	for i, seg := range segs {
		parent := strings.Join(segs[:i], ".")
		for cur.Kind() == reflect.Pointer {
			if cur.IsNil() {
				if !alloc {
					return reflect.Value{}, &Error{File: file, Key: key, Msg: parent + " is null"}
				}
				cur.Set(reflect.New(cur.Type().Elem()))
			}
			cur = cur.Elem()
		}
		switch cur.Kind() {
		case reflect.Struct:
			fi, ok := fieldByYAML(cur.Type(), seg)
			if !ok {
				return reflect.Value{}, &Error{File: file, Key: key, Msg: "unknown key" + suggestion(key)}
			}
			cur = cur.Field(fi)
		case reflect.Slice, reflect.Array:
			idx, ok := isIndex(seg)
			if !ok {
				msg := fmt.Sprintf("%s is a list: want an index, got %q", parent, seg)
				if cur.Type().Elem().Kind() == reflect.Struct {
					msg += suggestion(key)
				}
				return reflect.Value{}, &Error{File: file, Key: key, Msg: msg}
			}
			if idx >= cur.Len() {
				return reflect.Value{}, &Error{File: file, Key: key, Msg: fmt.Sprintf("index %d out of range: %s has %d items", idx, parent, cur.Len())}
			}
			cur = cur.Index(idx)
		default:
			return reflect.Value{}, &Error{File: file, Key: key, Msg: fmt.Sprintf("%s is %s and has no key %q", parent, kindName(cur.Type()), seg)}
		}
	}
	return cur, nil
}

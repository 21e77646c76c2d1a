package config

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// Error is one configuration error. File is the file name (or "-o KEY=VALUE"
// for an override); Line and Col (1-based) are 0 when no position applies;
// Key is the dotted key concerned ("" when none).
type Error struct {
	File string
	Line int
	Col  int
	Key  string
	Msg  string
	Err  error // the underlying error (a file-system error), if any
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// IsUsage reports whether the error is blamed on a command-line override
// ("-o KEY=VALUE": an unknown key, a value of the wrong type, or a value the
// validation refuses): the tools exit 2 for it, as for any usage error.
func (e *Error) IsUsage() bool { return strings.HasPrefix(e.File, "-o ") }

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Col)
	}
	if e.Key != "" {
		if b.Len() > 0 {
			b.WriteString(": ")
		}
		b.WriteString(e.Key)
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// decoder assigns YAML AST nodes to Go values with strict type checks.
type decoder struct {
	file    string
	anchors map[string]ast.Node
}

func (d *decoder) errAt(n ast.Node, key, format string, args ...any) *Error {
	e := &Error{File: d.file, Key: key, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		if tk := n.GetToken(); tk != nil && tk.Position != nil {
			e.Line, e.Col = tk.Position.Line, tk.Position.Column
		}
	}
	return e
}

// parseYAML parses src into the body node of its single document; nil body
// for an empty document.
func parseYAML(src []byte, file string) (ast.Node, error) {
	f, err := parser.ParseBytes(src, 0)
	if err != nil {
		e := &Error{File: file, Msg: "malformed YAML: " + err.Error()}
		var ye yaml.Error
		if errors.As(err, &ye) {
			e.Msg = "malformed YAML: " + ye.GetMessage()
			if tk := ye.GetToken(); tk != nil && tk.Position != nil {
				e.Line, e.Col = tk.Position.Line, tk.Position.Column
			}
		}
		return nil, e
	}
	if len(f.Docs) == 0 {
		return nil, nil
	}
	if len(f.Docs) > 1 {
		return nil, &Error{File: file, Msg: "more than one YAML document"}
	}
	return f.Docs[0].Body, nil
}

// resolve strips anchors, comments and follows aliases.
func (d *decoder) resolve(n ast.Node, key string) (ast.Node, error) {
	for depth := 0; depth < 64; depth++ {
		switch v := n.(type) {
		case *ast.AnchorNode:
			if d.anchors == nil {
				d.anchors = map[string]ast.Node{}
			}
			d.anchors[v.Name.String()] = v.Value
			n = v.Value
		case *ast.AliasNode:
			t, ok := d.anchors[v.Value.String()]
			if !ok {
				return nil, d.errAt(n, key, "unknown alias *%s", v.Value.String())
			}
			n = t
		case *ast.CommentGroupNode:
			return nil, nil
		case *ast.TagNode:
			return nil, d.errAt(n, key, "YAML tags (%s) are not supported", v.Start.Value)
		default:
			return n, nil
		}
	}
	return nil, d.errAt(n, key, "alias nesting too deep")
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a bool (true or false)"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice:
		return "a list of " + plural(t.Elem())
	case reflect.Array:
		return fmt.Sprintf("a list of %d %s", t.Len(), plural(t.Elem()))
	case reflect.Struct:
		return "a mapping"
	case reflect.Pointer:
		return kindName(t.Elem()) + " or null"
	}
	return t.String()
}

// plural names values of type t in the plural ("numbers", "lists of 2 numbers").
func plural(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "strings"
	case reflect.Bool:
		return "bools"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "integers"
	case reflect.Float32, reflect.Float64:
		return "numbers"
	case reflect.Slice:
		return "lists of " + plural(t.Elem())
	case reflect.Array:
		return fmt.Sprintf("lists of %d %s", t.Len(), plural(t.Elem()))
	case reflect.Struct:
		return "mappings"
	}
	return t.String()
}

func nodeDesc(n ast.Node) string {
	switch v := n.(type) {
	case *ast.StringNode:
		return fmt.Sprintf("string %q", v.Value)
	case *ast.LiteralNode:
		return "a block string"
	case *ast.IntegerNode:
		return "integer " + v.Token.Value
	case *ast.FloatNode:
		return "number " + v.Token.Value
	case *ast.BoolNode:
		return "bool " + v.Token.Value
	case *ast.NullNode:
		return "null"
	case *ast.InfinityNode, *ast.NanNode:
		return "number " + n.GetToken().Value
	case *ast.SequenceNode:
		return "a list"
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	}
	return n.Type().String()
}

// assign sets dst (addressable) from node n. Structs are merged into (fields
// the node does not name keep their value); lists and scalars are replaced.
// key is the dotted key of dst, for messages.
func (d *decoder) assign(dst reflect.Value, n ast.Node, key string) error {
	n, err := d.resolve(n, key)
	if err != nil {
		return err
	}
	if n == nil {
		return nil
	}
	t := dst.Type()
	bad := func() error {
		return d.errAt(n, key, "want %s, got %s", kindName(t), nodeDesc(n))
	}
	_, isNull := n.(*ast.NullNode)
	switch t.Kind() {
	case reflect.Pointer:
		if isNull {
			dst.Set(reflect.Zero(t))
			return nil
		}
		v := reflect.New(t.Elem())
		if !dst.IsNil() {
			v.Elem().Set(dst.Elem())
		}
		if err := d.assign(v.Elem(), n, key); err != nil {
			return err
		}
		dst.Set(v)
		return nil
	case reflect.String:
		switch v := n.(type) {
		case *ast.StringNode:
			dst.SetString(v.Value)
		case *ast.LiteralNode:
			dst.SetString(v.Value.Value)
		case *ast.NullNode:
			dst.SetString("")
		case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode:
			// A scalar that YAML typed as a number or bool is still valid
			// text for a string field (a class named 1, a split "2007").
			dst.SetString(n.GetToken().Value)
		default:
			return bad()
		}
		return nil
	case reflect.Bool:
		v, ok := n.(*ast.BoolNode)
		if !ok {
			return bad()
		}
		dst.SetBool(v.Value)
		return nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		var i int64
		if f, text, ok := plainNumber(n); ok {
			// goccy leaves "5e3" and out-of-range integers as strings.
			if f != math.Trunc(f) || math.Abs(f) > 1<<53 {
				return d.errAt(n, key, "want %s, got number %s", kindName(t), text)
			}
			n = &ast.FloatNode{BaseNode: &ast.BaseNode{}, Token: n.GetToken(), Value: f}
		}
		switch v := n.(type) {
		case *ast.IntegerNode:
			switch x := v.Value.(type) {
			case int64:
				i = x
			case uint64:
				if x > math.MaxInt64 {
					return d.errAt(n, key, "integer %s out of range", v.Token.Value)
				}
				i = int64(x)
			default:
				return bad()
			}
		case *ast.FloatNode:
			// 5e5 is a fine way to write an iteration count; 1.5 is not.
			if v.Value != math.Trunc(v.Value) || math.Abs(v.Value) > 1<<53 {
				return d.errAt(n, key, "want %s, got %s", kindName(t), nodeDesc(n))
			}
			i = int64(v.Value)
		default:
			return bad()
		}
		if dst.OverflowInt(i) {
			return d.errAt(n, key, "integer %d out of range for %s", i, t)
		}
		dst.SetInt(i)
		return nil
	case reflect.Float32, reflect.Float64:
		var f float64
		if pf, _, ok := plainNumber(n); ok {
			n = &ast.FloatNode{BaseNode: &ast.BaseNode{}, Token: n.GetToken(), Value: pf}
		}
		switch v := n.(type) {
		case *ast.IntegerNode:
			switch x := v.Value.(type) {
			case int64:
				f = float64(x)
			case uint64:
				f = float64(x)
			default:
				return bad()
			}
		case *ast.FloatNode:
			f = v.Value
		case *ast.InfinityNode, *ast.NanNode:
			return d.errAt(n, key, "want a finite number, got %s", nodeDesc(n))
		default:
			return bad()
		}
		dst.SetFloat(f)
		return nil
	case reflect.Slice:
		if isNull {
			dst.Set(reflect.Zero(t))
			return nil
		}
		seq, ok := n.(*ast.SequenceNode)
		if !ok {
			return bad()
		}
		s := reflect.MakeSlice(t, len(seq.Values), len(seq.Values))
		for i, e := range seq.Values {
			el := s.Index(i)
			if sd, ok := el.Addr().Interface().(interface{ setDefaults() }); ok {
				sd.setDefaults()
			}
			if err := d.assign(el, e, fmt.Sprintf("%s.%d", key, i)); err != nil {
				return err
			}
		}
		dst.Set(s)
		return nil
	case reflect.Array:
		seq, ok := n.(*ast.SequenceNode)
		if !ok {
			return bad()
		}
		if len(seq.Values) != t.Len() {
			return d.errAt(n, key, "want %s, got a list of %d", kindName(t), len(seq.Values))
		}
		a := reflect.New(t).Elem()
		a.Set(dst)
		for i, e := range seq.Values {
			if err := d.assign(a.Index(i), e, fmt.Sprintf("%s.%d", key, i)); err != nil {
				return err
			}
		}
		dst.Set(a)
		return nil
	case reflect.Struct:
		pairs, err := d.mappingPairs(n, key)
		if err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, p := range pairs {
			name := p.key
			sub := joinKey(key, name)
			if seen[name] {
				return d.errAt(p.keyNode, sub, "duplicate key")
			}
			seen[name] = true
			fi, ok := fieldByYAML(t, name)
			if !ok {
				return d.errAt(p.keyNode, sub, "unknown key%s", suggestion(sub))
			}
			if err := d.assign(dst.Field(fi), p.value, sub); err != nil {
				return err
			}
		}
		return nil
	}
	return d.errAt(n, key, "unsupported field type %s", t)
}

// numberRE is YAML 1.2's core-schema float (goccy, following YAML 1.1,
// types "1e-05" as a string).
var numberRE = regexp.MustCompile(`^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`)

// plainNumber reports whether n is an unquoted string that YAML 1.2 reads as
// a number, and its value and text.
func plainNumber(n ast.Node) (float64, string, bool) {
	s, ok := n.(*ast.StringNode)
	if !ok || s.Token == nil || s.Token.Type != token.StringType || !numberRE.MatchString(s.Value) {
		return 0, "", false
	}
	f, err := strconv.ParseFloat(s.Value, 64)
	if err != nil || math.IsInf(f, 0) {
		return 0, "", false
	}
	return f, s.Value, true
}

type kv struct {
	key     string
	keyNode ast.Node
	value   ast.Node
}

// mappingPairs returns the entries of a mapping node in order.
func (d *decoder) mappingPairs(n ast.Node, key string) ([]kv, error) {
	var mvs []*ast.MappingValueNode
	switch v := n.(type) {
	case *ast.MappingNode:
		mvs = v.Values
	case *ast.MappingValueNode:
		mvs = []*ast.MappingValueNode{v}
	default:
		what := "a mapping"
		if key != "" {
			what = "a mapping (" + strings.Join(childKeys(key), ", ") + ")"
		}
		return nil, d.errAt(n, key, "want %s, got %s", what, nodeDesc(n))
	}
	out := make([]kv, 0, len(mvs))
	for _, mv := range mvs {
		if _, ok := mv.Key.(*ast.MergeKeyNode); ok {
			return nil, d.errAt(mv.Key, key, "merge keys (<<) are not supported")
		}
		kn, err := d.resolve(mv.Key, key)
		if err != nil {
			return nil, err
		}
		if mk, ok := kn.(*ast.MappingKeyNode); ok {
			kn = mk.Value
		}
		var name string
		switch k := kn.(type) {
		case *ast.StringNode:
			name = k.Value
		case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.NullNode:
			name = k.GetToken().Value
		default:
			return nil, d.errAt(mv.Key, key, "mapping keys must be plain names")
		}
		out = append(out, kv{key: name, keyNode: mv.Key, value: mv.Value})
	}
	return out, nil
}

func joinKey(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// fieldByYAML finds the field of struct type t whose yaml name is name.
func fieldByYAML(t reflect.Type, name string) (int, bool) {
	for i := 0; i < t.NumField(); i++ {
		if yamlName(t.Field(i)) == name {
			return i, true
		}
	}
	return 0, false
}

// yamlName is the field's yaml key, "" for fields not serialised.
func yamlName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	tag := f.Tag.Get("yaml")
	name, _, _ := strings.Cut(tag, ",")
	if name == "-" || name == "" {
		return ""
	}
	return name
}

// isIndex reports whether a key segment is a list index.
func isIndex(seg string) (int, bool) {
	if seg == "" || len(seg) > 9 {
		return 0, false
	}
	i, err := strconv.Atoi(seg)
	return i, err == nil && i >= 0
}

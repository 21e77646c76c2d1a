package config

// The configuration reference, docs/config.md, is generated from this
// package: every key (the yaml names of Config's fields), its type, its
// default (Defaults) and its meaning (the field's doc comment, with Go field
// names turned into keys). TestConfigReference fails when the file is stale
// or a key has no comment; `go generate ./pkg/config` rewrites it.

import (
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
)

var updateReference = flag.Bool("update", false, "rewrite docs/config.md from the configuration types")

// referencePath is docs/config.md from this package's folder.
const referencePath = "../../docs/config.md"

// TestConfigReference: docs/config.md is what the configuration types say
// now, and every key has a meaning.
func TestConfigReference(t *testing.T) {
	docs, err := typeDocs(".")
	if err != nil {
		t.Fatal(err)
	}
	got, missing := reference(docs)
	if len(missing) > 0 {
		t.Errorf("keys without a doc comment on their field (pkg/config): %s", strings.Join(missing, ", "))
	}
	if *updateReference {
		tmp := referencePath + ".tmp"
		if err := os.WriteFile(tmp, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, referencePath); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(referencePath)
	if err != nil {
		t.Fatalf("%v: generate it with `go generate ./pkg/config`", err)
	}
	if string(want) != got {
		a, b := strings.Split(string(want), "\n"), strings.Split(got, "\n")
		line := 0
		for line < min(len(a), len(b)) && a[line] == b[line] {
			line++
		}
		t.Errorf("docs/config.md is stale (first difference at line %d): regenerate it with `go generate ./pkg/config`", line+1)
	}
}

// goDocs is what the package's source says about its types.
type goDocs struct {
	types  map[string]string            // type name -> doc comment
	fields map[string]map[string]string // type name -> field name -> doc comment
	order  map[string][]string          // type name -> field names in order
}

// typeDocs reads the doc comments of every struct type and field declared in
// the non-test Go files of dir.
func typeDocs(dir string) (*goDocs, error) {
	fset := token.NewFileSet()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	d := &goDocs{types: map[string]string{}, fields: map[string]map[string]string{}, order: map[string][]string{}}
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
		if err != nil {
			return nil, err
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.TYPE {
				continue
			}
			for _, spec := range gd.Specs {
				ts := spec.(*ast.TypeSpec)
				st, ok := ts.Type.(*ast.StructType)
				if !ok {
					continue
				}
				doc := ts.Doc
				if doc == nil {
					doc = gd.Doc
				}
				d.types[ts.Name.Name] = doc.Text()
				d.fields[ts.Name.Name] = map[string]string{}
				for _, fld := range st.Fields.List {
					text := fld.Doc.Text()
					if text == "" {
						text = fld.Comment.Text()
					}
					for _, n := range fld.Names {
						d.fields[ts.Name.Name][n.Name] = text
						d.order[ts.Name.Name] = append(d.order[ts.Name.Name], n.Name)
					}
				}
			}
		}
	}
	return d, nil
}

// fieldDoc is the comment of field name of type typ: its own, or, for a
// field declared right after one whose comment names it ("Mean and Std
// normalise ..."), that one's.
func (d *goDocs) fieldDoc(typ, name string) string {
	if s := d.fields[typ][name]; s != "" {
		return s
	}
	order := d.order[typ]
	for i, n := range order {
		if n != name {
			continue
		}
		for j := i - 1; j >= 0; j-- {
			if s := d.fields[typ][order[j]]; s != "" {
				if regexp.MustCompile(`\b` + name + `\b`).MatchString(s) {
					return s
				}
				return ""
			}
		}
	}
	return ""
}

// refRow is one line of the reference.
type refRow struct {
	key, typ, def, meaning string
}

// reference renders docs/config.md and lists the keys without a meaning.
func reference(d *goDocs) (string, []string) {
	def := Defaults()
	root := reflect.ValueOf(def)
	// The key prefix of each struct type, for "DistillConfig.Weight" in a comment.
	prefixes := map[string]string{}
	var walkTypes func(t reflect.Type, prefix string)
	walkTypes = func(t reflect.Type, prefix string) {
		prefixes[t.Name()] = prefix
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name := yamlName(f)
			switch {
			case name == "":
			case f.Type.Kind() == reflect.Struct:
				walkTypes(f.Type, joinKey(prefix, name))
			case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
				walkTypes(f.Type.Elem(), joinKey(prefix, name)+"."+indexPlaceholder)
			}
		}
	}
	walkTypes(root.Type(), "")

	var missing []string
	var b strings.Builder
	b.WriteString(`# Configuration reference

<!-- Generated from pkg/config by ` + "`go generate ./pkg/config`" + ` (pkg/config/reference_test.go); do not edit.
     ` + "`make test`" + ` fails when this file is stale. -->

Every key of a yolodistill configuration, with its type, its default (what a key
that no file sets holds) and its meaning, from the comments in pkg/config. A
configuration is built in three layers: these defaults, then the YAML file (which may
inherit another through a top-level ` + "`_base_: path`" + `, relative to the inheriting
file), then ` + "`-o key=value`" + ` overrides, in order. A key is the dotted path shown here; a
number indexes a list (` + "`-o distill.pairs.0.kind=l1`" + `, where N stands for it below).
Values are YAML: ` + "`-o data.augment.multi_scale=[320,416]`" + `. An unknown key, or a
value of the wrong type, is an error (exit 2) that suggests the nearest key.

Units: anchors in input pixels (width, height); sizes are square input sizes in pixels;
learning-rate milestones and every "iter" count are iterations (optimizer steps), not
epochs, except ` + "`data.augment.mixup.epochs`" + `.
`)
	t := root.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := yamlName(f)
		if name == "" {
			continue
		}
		fmt.Fprintf(&b, "\n## %s\n\n", name)
		if doc := cleanDoc(d.types[f.Type.Name()], d, f.Type.Name(), prefixes); doc != "" {
			b.WriteString(doc + "\n\n")
		}
		b.WriteString("| key | type | default | meaning |\n|---|---|---|---|\n")
		var rows []refRow
		collectRows(d, prefixes, root.Field(i), f.Type, name, &rows)
		for _, r := range rows {
			if r.meaning == "" {
				missing = append(missing, r.key)
			}
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", r.key, r.typ, r.def, escapeCell(r.meaning))
		}
	}
	sort.Strings(missing)
	return b.String(), missing
}

// collectRows adds the rows of struct value v (type t) under key prefix.
func collectRows(d *goDocs, prefixes map[string]string, v reflect.Value, t reflect.Type, prefix string, rows *[]refRow) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := yamlName(f)
		if name == "" {
			continue
		}
		key := joinKey(prefix, name)
		meaning := cleanDoc(d.fieldDoc(t.Name(), f.Name), d, t.Name(), prefixes)
		switch {
		case f.Type.Kind() == reflect.Struct:
			if meaning == "" {
				meaning = cleanDoc(d.types[f.Type.Name()], d, f.Type.Name(), prefixes)
			}
			*rows = append(*rows, refRow{key: key, typ: "mapping", def: "", meaning: meaning})
			collectRows(d, prefixes, v.Field(i), f.Type, key, rows)
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
			et := f.Type.Elem()
			*rows = append(*rows, refRow{key: key, typ: "list of mappings (keys " + key + ".N.*)", def: "`" + flow(v.Field(i)) + "`", meaning: meaning})
			elem := reflect.New(et)
			if sd, ok := elem.Interface().(interface{ setDefaults() }); ok {
				sd.setDefaults()
			}
			collectRows(d, prefixes, elem.Elem(), et, key+"."+indexPlaceholder, rows)
		default:
			*rows = append(*rows, refRow{key: key, typ: typeName(f.Type), def: "`" + flow(v.Field(i)) + "`", meaning: meaning})
		}
	}
}

// flow is a value in the canonical text's flow style.
func flow(v reflect.Value) string {
	var b strings.Builder
	emitFlow(&b, v)
	return b.String()
}

// typeName says what a key holds, in YAML's terms.
func typeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Pointer:
		return typeName(t.Elem()) + " or null"
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "bool"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Array:
		return fmt.Sprintf("list of %d %ss", t.Len(), typeName(t.Elem()))
	case reflect.Slice:
		e := typeName(t.Elem())
		if t.Elem().Kind() == reflect.Array {
			e = fmt.Sprintf("[%d %ss]", t.Elem().Len(), typeName(t.Elem().Elem()))
			return "list of " + e
		}
		if strings.HasPrefix(e, "list") {
			return "list of (" + e + ")"
		}
		return "list of " + e + "s"
	}
	return t.String()
}

var (
	qualifiedRE = regexp.MustCompile(`\b([A-Z][A-Za-z]*Config)\.([A-Z][A-Za-z]*)\b`)
	wordRE      = regexp.MustCompile(`\b[A-Z][A-Za-z]*\b`)
)

// cleanDoc joins a doc comment into one paragraph and names keys as keys:
// "DistillConfig.Weight" becomes `distill.weight`, and a field name of the
// same type (typ) its yaml name.
func cleanDoc(doc string, d *goDocs, typ string, prefixes map[string]string) string {
	s := strings.Join(strings.Fields(doc), " ")
	keyOf := func(t, field string) (string, bool) {
		rt := typeByName(t)
		if rt == nil {
			return "", false
		}
		sf, ok := rt.FieldByName(field)
		if !ok || yamlName(sf) == "" {
			return "", false
		}
		return joinKey(prefixes[t], yamlName(sf)), true
	}
	s = qualifiedRE.ReplaceAllStringFunc(s, func(m string) string {
		p := qualifiedRE.FindStringSubmatch(m)
		if k, ok := keyOf(p[1], p[2]); ok {
			return "`" + k + "`"
		}
		return m
	})
	s = wordRE.ReplaceAllStringFunc(s, func(w string) string {
		if _, ok := d.fields[typ][w]; !ok {
			return w
		}
		rt := typeByName(typ)
		if rt == nil {
			return w
		}
		if sf, ok := rt.FieldByName(w); ok && yamlName(sf) != "" {
			return "`" + yamlName(sf) + "`"
		}
		return w
	})
	return s
}

// typeByName finds a struct type of Config's tree by its Go name.
func typeByName(name string) reflect.Type {
	var found reflect.Type
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		if found != nil {
			return
		}
		if t.Name() == name {
			found = t
			return
		}
		for i := 0; i < t.NumField(); i++ {
			ft := t.Field(i).Type
			if ft.Kind() == reflect.Slice {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				walk(ft)
			}
		}
	}
	walk(reflect.TypeOf(Config{}))
	return found
}

// escapeCell keeps a table cell one cell.
func escapeCell(s string) string {
	return strings.ReplaceAll(s, "|", `\|`)
}

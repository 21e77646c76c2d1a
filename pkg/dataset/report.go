package dataset

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
)

// CheckReport is what `dataset check` says about a dataset it read: counts of
// the usable images and their boxes (overall and per class), and every
// problem the reader found, with counts by severity and by kind. Its JSON
// form (field tags below) is check's --json output; WriteText is its line
// output.
type CheckReport struct {
	Path   string `json:"path"`   // the dataset as named on the command line
	Format string `json:"format"` // "voc" or "coco"
	Images int    `json:"images"` // usable images: the dataset's samples
	Boxes  int    `json:"boxes"`  // objects of those samples
	// Classes are the class names in label order (never nil: [] in JSON).
	Classes []string `json:"classes"`
	// PerClass counts boxes by class name; a class without boxes may be absent.
	PerClass map[string]int `json:"boxes_per_class"`
	Errors   int            `json:"errors"`   // problems of severity Error
	Warnings int            `json:"warnings"` // problems of severity Warning
	// ByKind counts problems by Kind (KindBoxClipped, ...).
	ByKind map[string]int `json:"problems_by_kind"`
	// Problems are sorted (Problems.Sort; never nil: [] in JSON).
	Problems Problems `json:"problems"`
}

// MaxClassesShown bounds the per-class counts in WriteText's summary line;
// the JSON form lists them all.
const MaxClassesShown = 20

// NewCheckReport counts ds and ps, the dataset and problems a reader returned
// for the dataset at path in format. It sorts ps in place (Problems.Sort), and
// the report keeps ps.
func NewCheckReport(path, format string, ds *Dataset, ps Problems) *CheckReport {
	ps.Sort()
	r := &CheckReport{Path: path, Format: format, Images: len(ds.Samples), Boxes: ds.NumObjects(), Classes: ds.Classes,
		PerClass: map[string]int{}, Errors: ps.Count(Error), Warnings: ps.Count(Warning), ByKind: map[string]int{}, Problems: ps}
	if r.Classes == nil {
		r.Classes = []string{}
	}
	if r.Problems == nil {
		r.Problems = Problems{}
	}
	for _, s := range ds.Samples {
		for _, o := range s.Objects {
			r.PerClass[ds.Classes[o.Label]]++
		}
	}
	for _, p := range ps {
		r.ByKind[p.Kind]++
	}
	return r
}

// NumObjects is the number of objects of all samples.
func (ds *Dataset) NumObjects() int {
	n := 0
	for _, s := range ds.Samples {
		n += len(s.Objects)
	}
	return n
}

// WriteJSON writes the report as one JSON object, indented by one space,
// and a newline.
func (r *CheckReport) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	return enc.Encode(r)
}

// WriteText writes one line per problem (Problem.String) and a summary line:
//
//	PATH: FORMAT, N images usable, N boxes, N classes [A n, B n, ...]; N errors, N warnings (kind n, ...)
//
// The class list is in label order and cut after MaxClassesShown classes;
// the problem kinds are sorted, and left out, parentheses included, when
// there are none.
func (r *CheckReport) WriteText(w io.Writer) error {
	if err := r.Problems.Write(w); err != nil {
		return err
	}
	var per []string
	for _, cl := range r.Classes {
		per = append(per, fmt.Sprintf("%s %d", cl, r.PerClass[cl]))
	}
	if len(per) > MaxClassesShown {
		per = append(per[:MaxClassesShown], "... (--json lists all)")
	}
	var kinds []string
	for k, n := range r.ByKind {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
	}
	sort.Strings(kinds)
	byKind := ""
	if len(kinds) > 0 {
		byKind = " (" + strings.Join(kinds, ", ") + ")"
	}
	_, err := fmt.Fprintf(w, "%s: %s, %d images usable, %d boxes, %d classes [%s]; %d errors, %d warnings%s\n",
		r.Path, r.Format, r.Images, r.Boxes, len(r.Classes), strings.Join(per, ", "), r.Errors, r.Warnings, byKind)
	return err
}

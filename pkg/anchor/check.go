package anchor

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// The lists an Error can be in, named as the configuration's keys.
const (
	AnchorsKey = "anchors"      // the anchor list
	MasksKey   = "anchor_masks" // the masks
	StridesKey = "strides"      // the outputs' strides
)

// Error is one problem Validate found, with where it is.
type Error struct {
	// List is AnchorsKey, MasksKey or StridesKey.
	List string
	// Index is the place inside List: empty for the list itself, [i] for
	// anchor, mask or stride i, [i, j] for entry j of mask i.
	Index []int
	// Msg says what is wrong, without the place.
	Msg string
}

// Key is the place as a dotted path: "anchors", "anchors.3",
// "anchor_masks.1", "anchor_masks.1.2", "strides.0".
func (e *Error) Key() string {
	var b strings.Builder
	b.WriteString(e.List)
	for _, i := range e.Index {
		b.WriteByte('.')
		b.WriteString(strconv.Itoa(i))
	}
	return b.String()
}

// Error is Key(), ": ", Msg.
func (e *Error) Error() string { return e.Key() + ": " + e.Msg }

// Validate returns every problem of anchors and masks for a head whose
// outputs have the given strides (deepest first; DefaultStrides for YOLOv3),
// in order (anchors, then strides, then masks, each in index order), or nil
// when there is none:
//   - there is at least one anchor, and every anchor has a finite, positive
//     width and height;
//   - there is at least one output, and every stride is >= 1;
//   - there is one mask per output, and every mask is non-empty, its entries
//     indices into anchors, none used twice (in one mask or across masks).
//
// Anchors that no mask names are allowed: they still compete in the loss's
// best-anchor choice.
func Validate(anchors []Anchor, masks [][]int, strides []int) []*Error {
	var errs []*Error
	add := func(list string, index []int, format string, args ...any) {
		errs = append(errs, &Error{List: list, Index: index, Msg: fmt.Sprintf(format, args...)})
	}
	if len(anchors) == 0 {
		add(AnchorsKey, nil, "no anchors")
	}
	for i, a := range anchors {
		if !(a[0] > 0 && a[1] > 0) || math.IsInf(a[0], 0) || math.IsInf(a[1], 0) {
			add(AnchorsKey, []int{i}, "anchor [%g, %g] must have positive width and height", a[0], a[1])
		}
	}
	if len(strides) == 0 {
		add(StridesKey, nil, "no outputs: want one stride per output")
	}
	for i, s := range strides {
		if s < 1 {
			add(StridesKey, []int{i}, "stride %d must be >= 1", s)
		}
	}
	if len(strides) > 0 && len(masks) != len(strides) {
		s := make([]string, len(strides))
		for i, v := range strides {
			s[i] = strconv.Itoa(v)
		}
		add(MasksKey, nil, "want %d masks (strides %s), got %d", len(strides), strings.Join(s, ", "), len(masks))
	}
	used := map[int]int{} // anchor index -> the first mask naming it
	for i, mask := range masks {
		if len(mask) == 0 {
			add(MasksKey, []int{i}, "empty mask")
		}
		for j, a := range mask {
			switch first, seen := used[a]; {
			case a < 0 || a >= len(anchors):
				add(MasksKey, []int{i, j}, "anchor index %d out of range [0, %d): there are %d anchors", a, len(anchors), len(anchors))
			case seen && first == i:
				add(MasksKey, []int{i, j}, "anchor index %d repeated in the mask", a)
			case seen:
				add(MasksKey, []int{i, j}, "anchor index %d is also in mask %d", a, first)
			default:
				used[a] = i
			}
		}
	}
	return errs
}

// Check is Validate as one error: nil, or the errors.Join of Validate's
// *Error values (one line each).
func Check(anchors []Anchor, masks [][]int, strides []int) error {
	errs := Validate(anchors, masks, strides)
	if len(errs) == 0 {
		return nil
	}
	all := make([]error, len(errs))
	for i, e := range errs {
		all[i] = e
	}
	return errors.Join(all...)
}

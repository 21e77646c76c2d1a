package anchor

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	d, m, s := Defaults(), DefaultMasks(), DefaultStrides()
	tests := []struct {
		name    string
		anchors []Anchor
		masks   [][]int
		strides []int
		want    []string // Error() of each problem, in order
	}{
		{"defaults", d, m, s, nil},
		{"two outputs", d, [][]int{{0, 1}, {2}}, []int{16, 8}, nil},
		{"unused anchors", d, [][]int{{8}, {4}, {0}}, s, nil},
		{"no anchors", nil, [][]int{{0}, {1}, {2}}, s, []string{
			"anchors: no anchors",
			"anchor_masks.0.0: anchor index 0 out of range [0, 0): there are 0 anchors",
			"anchor_masks.1.0: anchor index 1 out of range [0, 0): there are 0 anchors",
			"anchor_masks.2.0: anchor index 2 out of range [0, 0): there are 0 anchors",
		}},
		{"sizes", []Anchor{{0, 5}, {1, math.Inf(1)}, {math.NaN(), 1}, {-1, 2}, {3, 4}}, [][]int{{4}}, []int{32}, []string{
			"anchors.0: anchor [0, 5] must have positive width and height",
			"anchors.1: anchor [1, +Inf] must have positive width and height",
			"anchors.2: anchor [NaN, 1] must have positive width and height",
			"anchors.3: anchor [-1, 2] must have positive width and height",
		}},
		{"count", d, [][]int{{0}, {1}}, s, []string{"anchor_masks: want 3 masks (strides 32, 16, 8), got 2"}},
		{"no outputs", d, nil, nil, []string{"strides: no outputs: want one stride per output"}},
		{"no strides", d, m, []int{}, []string{"strides: no outputs: want one stride per output"}},
		{"bad strides", d, m, []int{32, 0, -8}, []string{"strides.1: stride 0 must be >= 1", "strides.2: stride -8 must be >= 1"}},
		{"no masks for strides", d, nil, s, []string{"anchor_masks: want 3 masks (strides 32, 16, 8), got 0"}},
		{"empty mask", d, [][]int{{1}, {}, {2}}, s, []string{"anchor_masks.1: empty mask"}},
		{"range", d, [][]int{{9}, {-1}, {2}}, s, []string{
			"anchor_masks.0.0: anchor index 9 out of range [0, 9): there are 9 anchors",
			"anchor_masks.1.0: anchor index -1 out of range [0, 9): there are 9 anchors",
		}},
		{"repeat in a mask", d, [][]int{{0, 0}, {1}, {2}}, s, []string{"anchor_masks.0.1: anchor index 0 repeated in the mask"}},
		{"in two masks", d, [][]int{{1, 5}, {3, 1}, {2, 5, 5}}, s, []string{
			"anchor_masks.1.1: anchor index 1 is also in mask 0",
			"anchor_masks.2.1: anchor index 5 is also in mask 0",
			"anchor_masks.2.2: anchor index 5 is also in mask 0",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, e := range Validate(tt.anchors, tt.masks, tt.strides) {
				got = append(got, e.Error())
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("problems\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			err := Check(tt.anchors, tt.masks, tt.strides)
			if (err == nil) != (len(tt.want) == 0) || (err != nil && err.Error() != strings.Join(tt.want, "\n")) {
				t.Errorf("Check: %v", err)
			}
			var e *Error
			if err != nil && !errors.As(err, &e) {
				t.Errorf("Check's error holds no *Error: %v", err)
			}
		})
	}
}

func TestErrorKey(t *testing.T) {
	for _, tt := range []struct {
		e    Error
		want string
	}{
		{Error{List: AnchorsKey}, "anchors"},
		{Error{List: AnchorsKey, Index: []int{3}}, "anchors.3"},
		{Error{List: MasksKey, Index: []int{1}}, "anchor_masks.1"},
		{Error{List: MasksKey, Index: []int{1, 2}}, "anchor_masks.1.2"},
		{Error{List: StridesKey, Index: []int{0}}, "strides.0"},
	} {
		if got := tt.e.Key(); got != tt.want {
			t.Errorf("Key() = %q, want %q", got, tt.want)
		}
	}
}

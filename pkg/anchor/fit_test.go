package anchor

import (
	"math"
	"reflect"
	"strings"
	"testing"
)

// repeat lists each size n[i] times, interleaved so that the input is not
// already grouped.
func repeat(sizes []Anchor, n []int) []Anchor {
	var out []Anchor
	for round := 0; ; round++ {
		added := false
		for i, s := range sizes {
			if round < n[i] {
				out = append(out, s)
				added = true
			}
		}
		if !added {
			return out
		}
	}
}

// TestFitExactSizes: boxes of exactly k sizes give those sizes as
// anchors (sorted by area) and a mean IoU of 1, with either init.
func TestFitExactSizes(t *testing.T) {
	three := []Anchor{{50, 20}, {5, 6}, {16, 30}}
	nine := []Anchor{{373, 326}, {10, 13}, {16, 30}, {33, 23}, {30, 61}, {62, 45}, {59, 119}, {116, 90}, {156, 198}}
	cases := []struct {
		name  string
		sizes []Anchor
		n     []int
		init  Init
	}{
		{"3 sizes once each", three, []int{1, 1, 1}, InitQuantile},
		{"3 sizes equal counts", three, []int{4, 4, 4}, InitQuantile},
		{"3 sizes skewed counts", three, []int{1, 20, 2}, InitQuantile},
		{"3 sizes kmeans++", three, []int{7, 1, 3}, InitKMeansPP},
		{"9 sizes quantile", nine, []int{3, 1, 4, 1, 5, 9, 2, 6, 5}, InitQuantile},
		{"9 sizes kmeans++", nine, []int{3, 1, 4, 1, 5, 9, 2, 6, 5}, InitKMeansPP},
	}
	const tol = 1e-12
	for _, c := range cases {
		sizes := repeat(c.sizes, c.n)
		fit, err := Fit(sizes, FitOptions{K: len(c.sizes), Init: c.init, Seed: 7})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		want := append([]Anchor(nil), c.sizes...)
		sortByArea(want)
		if !reflect.DeepEqual(fit.Anchors, want) {
			t.Errorf("%s: anchors %v, want %v", c.name, fit.Anchors, want)
		}
		if math.Abs(fit.MeanIoU-1) > tol || !fit.Converged {
			t.Errorf("%s: mean IoU %v converged %v, want 1 and true", c.name, fit.MeanIoU, fit.Converged)
		}
	}
}

// TestFitTwoClusters: two well separated groups converge to their
// per-dimension medians; the mean IoU is worked out by hand.
func TestFitTwoClusters(t *testing.T) {
	sizes := []Anchor{{10, 10}, {40, 20}, {9, 9}, {50, 25}, {10, 10}, {60, 30}, {11, 11}, {10, 10}}
	want := []Anchor{{10, 10}, {50, 25}}
	wantIoU := (0.81 + 1 + 1 + 1 + 100.0/121 + 800.0/1250 + 1 + 1250.0/1800) / 8
	for _, init := range []Init{InitQuantile, InitKMeansPP} {
		fit, err := Fit(sizes, FitOptions{K: 2, Init: init, Seed: 3})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(fit.Anchors, want) {
			t.Errorf("%v: anchors %v, want %v", init, fit.Anchors, want)
		}
		if math.Abs(fit.MeanIoU-wantIoU) > 1e-12 {
			t.Errorf("%v: mean IoU %v, want %v", init, fit.MeanIoU, wantIoU)
		}
		if got := MeanBestIoU(sizes, want); math.Abs(got-wantIoU) > 1e-12 {
			t.Errorf("MeanBestIoU = %v, want %v", got, wantIoU)
		}
	}
}

// TestFitDeterministic: the same seed gives the same anchors.
func TestFitDeterministic(t *testing.T) {
	var sizes []Anchor
	for i := 0; i < 500; i++ {
		// A spread of shapes from a fixed formula (no RNG needed).
		w := 5 + float64((i*37)%101)
		h := 5 + float64((i*53)%97)
		sizes = append(sizes, Anchor{w, h})
	}
	for _, init := range []Init{InitQuantile, InitKMeansPP} {
		a, err := Fit(sizes, FitOptions{K: 9, Init: init, Seed: 11})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := Fit(sizes, FitOptions{K: 9, Init: init, Seed: 11})
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%v: two fits with seed 11 differ: %v vs %v", init, a.Anchors, b.Anchors)
		}
		if len(a.Anchors) != 9 {
			t.Fatalf("%v: %d anchors, want 9", init, len(a.Anchors))
		}
		for i := 1; i < len(a.Anchors); i++ {
			if a.Anchors[i].Area() < a.Anchors[i-1].Area() {
				t.Errorf("%v: anchors not sorted by area: %v", init, a.Anchors)
			}
		}
		if a.MeanIoU < 0.5 || a.MeanIoU > 1 {
			t.Errorf("%v: mean IoU %v outside [0.5, 1]", init, a.MeanIoU)
		}
	}
}

func TestFitErrors(t *testing.T) {
	cases := []struct {
		name  string
		sizes []Anchor
		opt   FitOptions
		want  string
	}{
		{"no boxes", nil, FitOptions{}, "no boxes"},
		{"too few distinct", []Anchor{{1, 1}, {1, 1}, {2, 2}}, FitOptions{K: 3}, "2 distinct sizes"},
		{"default k too many", []Anchor{{1, 1}, {2, 2}}, FitOptions{}, "cannot give 9"},
		{"zero width", []Anchor{{1, 1}, {0, 2}}, FitOptions{K: 1}, "box size 1 is 0x2"},
		{"NaN", []Anchor{{math.NaN(), 1}}, FitOptions{K: 1}, "box size 0"},
		{"Inf", []Anchor{{1, math.Inf(1)}}, FitOptions{K: 1}, "box size 0"},
		{"bad init", []Anchor{{1, 1}}, FitOptions{K: 1, Init: 9}, "anchor init"},
	}
	for _, c := range cases {
		_, err := Fit(c.sizes, c.opt)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
	if _, err := ParseInit("random"); err == nil {
		t.Error("ParseInit(random): no error")
	}
	for _, s := range []string{"quantile", "kmeans++"} {
		i, err := ParseInit(s)
		if err != nil || i.String() != s {
			t.Errorf("ParseInit(%q) = %v, %v", s, i, err)
		}
	}
}

func TestRound(t *testing.T) {
	in := []Anchor{{10.44, 10.04}, {10.2, 10.1}, {59.96, 119.05}}
	cases := []struct {
		name     string
		decimals int
		want     []Anchor
	}{
		// 10.44x10.04 has the larger area but rounds to 10x10 < 10x10.
		{"integers", 0, []Anchor{{10, 10}, {10, 10}, {60, 119}}},
		{"one decimal", 1, []Anchor{{10.2, 10.1}, {10.4, 10}, {60, 119.1}}},
	}
	for _, c := range cases {
		got := Round(in, c.decimals)
		for i := range got {
			if math.Abs(got[i].W()-c.want[i].W()) > 1e-9 || math.Abs(got[i].H()-c.want[i].H()) > 1e-9 {
				t.Errorf("%s: %v, want %v", c.name, got, c.want)
				break
			}
		}
	}
	if in[0] != (Anchor{10.44, 10.04}) {
		t.Errorf("Round modified its input: %v", in)
	}
}

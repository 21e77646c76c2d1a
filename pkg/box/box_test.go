package box

import (
	"math"
	"testing"
)

func TestIoU(t *testing.T) {
	cases := []struct {
		name string
		a, b Box
		want float64
	}{
		{"identical", Box{0, 0, 10, 10}, Box{0, 0, 10, 10}, 1},
		{"disjoint", Box{0, 0, 10, 10}, Box{10, 0, 20, 10}, 0},
		{"half", Box{0, 0, 10, 10}, Box{5, 0, 15, 10}, 50.0 / 150},
		{"inside", Box{0, 0, 10, 10}, Box{2, 2, 4, 4}, 4.0 / 100},
		{"both empty", Box{0, 0, 0, 0}, Box{1, 1, 1, 1}, 0},
	}
	for _, tc := range cases {
		if got := IoU(tc.a, tc.b); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("%s: IoU = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestNMS(t *testing.T) {
	dets := []Scored{
		{Box{0, 0, 10, 10}, 0.9, 0},
		{Box{1, 0, 11, 10}, 0.8, 0}, // IoU 0.818 with the first: suppressed
		{Box{1, 0, 11, 10}, 0.7, 1}, // other label: kept
		{Box{20, 20, 30, 30}, 0.6, 0},
		{Box{40, 40, 50, 50}, 0.005, 0}, // under the score threshold
	}
	got := NMS(dets, 0.01, 0.45, 0, 0)
	want := []float64{0.9, 0.7, 0.6}
	if len(got) != len(want) {
		t.Fatalf("got %d boxes, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i].Score != want[i] {
			t.Errorf("box %d score %v, want %v", i, got[i].Score, want[i])
		}
	}
	if k := NMS(dets, 0.01, 0.45, 0, 2); len(k) != 2 {
		t.Errorf("keep=2 gave %d boxes", len(k))
	}
}

package train

import (
	"math"
	"testing"
)

func TestSchedule(t *testing.T) {
	// PaddleDetection yolov3_mobilenet_v1_voc: base 0.001, warmup 1000 from 0,
	// milestones 20000 and 25000, gamma 0.1.
	s := Schedule{BaseLR: 0.001, Milestones: []int{20000, 25000}, Gamma: 0.1, WarmupSteps: 1000}
	cases := []struct {
		name string
		it   int
		want float64
	}{
		{"first step", 0, 0},
		{"mid warmup", 500, 0.0005},
		{"end of warmup", 1000, 0.001},
		{"before first milestone", 19999, 0.001},
		{"first milestone", 20000, 0.0001},
		{"second milestone", 25000, 0.00001},
	}
	for _, tc := range cases {
		if got := s.At(tc.it); math.Abs(got-tc.want) > 1e-15 {
			t.Errorf("%s: At(%d) = %g, want %g", tc.name, tc.it, got, tc.want)
		}
	}
	f := Schedule{BaseLR: 0.3, WarmupSteps: 3, WarmupStartFactor: 1.0 / 3}
	if got, want := f.At(0), 0.1; math.Abs(got-want) > 1e-15 {
		t.Errorf("start factor: At(0) = %g, want %g", got, want)
	}
}

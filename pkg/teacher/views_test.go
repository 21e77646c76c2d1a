package teacher

import "testing"

func TestNeededViews(t *testing.T) {
	for _, c := range []struct{ iters, per, want int }{
		{600, 60, 11}, // demo.mk's DEMO_VIEWS: 10 epochs, plus one
		{40, 12, 5},
		{12, 12, 2},
		{0, 12, 1},
		{5, 0, 1},
	} {
		if got := NeededViews(c.iters, c.per); got != c.want {
			t.Errorf("NeededViews(%d, %d) = %d, want %d", c.iters, c.per, got, c.want)
		}
	}
}

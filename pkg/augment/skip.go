package augment

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"yolodistill/pkg/dataset"
)

// AllowedSkips is how many of a split's n images may be skipped under a limit
// given as a fraction of the split (data.skip_limit): fraction*n rounded up,
// so that any positive fraction allows one image of a split of two or more,
// and 0 allows none; never all n.
func AllowedSkips(fraction float64, n int) int {
	if !(fraction > 0) || n <= 1 {
		return 0
	}
	return min(n-1, int(math.Ceil(fraction*float64(n)-1e-9)))
}

// SkipTally counts the distinct images a run skipped and says when they are
// more than the limit allows. The zero value allows none; set Allowed (see
// AllowedSkips), and Key and Fraction for messages.
type SkipTally struct {
	Allowed  int     // images that may be skipped before Over
	Split    int     // images in the split, for messages
	Fraction float64 // the configured fraction, for messages
	Key      string  // the configuration key, for messages ("data.skip_limit")

	seen  map[int]bool
	skips []dataset.Skip
}

// Add records skips and returns those not seen before, in order (report
// each of these once).
func (t *SkipTally) Add(skips []dataset.Skip) []dataset.Skip {
	var fresh []dataset.Skip
	for _, s := range skips {
		if t.seen[s.Index] {
			continue
		}
		if t.seen == nil {
			t.seen = map[int]bool{}
		}
		t.seen[s.Index] = true
		t.skips = append(t.skips, s)
		fresh = append(fresh, s)
	}
	return fresh
}

// Count is the number of distinct images skipped so far.
func (t *SkipTally) Count() int { return len(t.skips) }

// Skips returns the distinct skipped images in the order they were met.
func (t *SkipTally) Skips() []dataset.Skip { return t.skips }

// Over reports whether more images were skipped than allowed.
func (t *SkipTally) Over() bool { return len(t.skips) > t.Allowed }

// Err returns nil, or when Over an error listing the skipped images.
func (t *SkipTally) Err() error {
	if !t.Over() {
		return nil
	}
	key := t.Key
	if key == "" {
		key = "the limit"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d images could not be loaded, more than the %d that %s=%g allows (fix or remove them; `dataset check` lists them):",
		len(t.skips), t.Split, t.Allowed, key, t.Fraction)
	for i, s := range t.skips {
		if i == 5 {
			fmt.Fprintf(&b, " ... (%d more)", len(t.skips)-i)
			break
		}
		fmt.Fprintf(&b, " %v;", s.Err)
	}
	return errors.New(strings.TrimSuffix(b.String(), ";"))
}

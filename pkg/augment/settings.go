package augment

import (
	"strconv"
	"strings"
)

// ReplaySettings returns the settings of c that rebuilding a view's pixels
// from its Record (Apply, Replay) reads from c rather than from the record,
// keyed by the configuration key they come from, each value as canonical text
// (comma-separated shortest decimals in brackets, the value as Apply uses it):
//
//	data.augment.mean         Mean, e.g. "[0.485,0.456,0.406]"
//	data.augment.std          Std
//	data.augment.expand.fill  ExpandFill, the canvas colour (already truncated to integers)
//
// Every other random or fixed choice (mixup partner and factor, colour
// operations and deltas, expansion and crop rectangles, flip, input size,
// interpolation) is in the record, so the probabilities and ranges that drew
// it do not matter for a replay. MaxBoxes is read too, but it only limits the
// returned targets, not the pixels, and is not listed.
//
// Two processes rebuild the same pixels from the same records and images when
// their settings are equal. With drawnOnly, only the settings that views drawn
// with c (Draw) can read are returned: the fill is left out when c.Expand is
// off, since no such view is placed on a canvas. A writer of records records
// ReplaySettings(true); a consumer compares them with its ReplaySettings(false).
func (c *Config) ReplaySettings(drawnOnly bool) map[string]string {
	s := map[string]string{
		"data.augment.mean": floatList(c.Mean[:], 64),
		"data.augment.std":  floatList(c.Std[:], 64),
	}
	if c.Expand || !drawnOnly {
		f := make([]float64, len(c.ExpandFill))
		for i, v := range c.ExpandFill {
			f[i] = float64(v)
		}
		s["data.augment.expand.fill"] = floatList(f, 32)
	}
	return s
}

// floatList formats v as "[a,b,...]" with the shortest decimals that give
// back the same values at the given bit size (32 or 64).
func floatList(v []float64, bits int) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, x := range v {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatFloat(x, 'g', -1, bits))
	}
	b.WriteByte(']')
	return b.String()
}

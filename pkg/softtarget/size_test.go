package softtarget_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"yolodistill/pkg/softtarget"
	"yolodistill/pkg/softtarget/softtargettest"
)

// viewBytes is the bytes one view adds to a stream: the stream with the view
// minus the stream without it (record batch framing and index entry included).
func viewBytes(t testing.TB, m softtarget.Meta, v *softtarget.View) int {
	return len(softtargettest.WriteStream(t, m, []*softtarget.View{v})) - len(softtargettest.WriteStream(t, m, nil))
}

// TestSizeTable prints bytes per view for every encoding at 320/416/608 px
// with 3 and 80 classes (go test -v -run SizeTable), on realistic objectness:
// background logits N(-7, 2), 0.3% of cells confident (logit in [0, 5)). It
// checks dense32 against 4*3*(5+C)*sum(H*W) and that the other forms are
// smaller in the expected proportions.
func TestSizeTable(t *testing.T) {
	encs := []struct {
		name string
		enc  softtarget.Encoding
	}{
		{"dense32", softtarget.Encoding{}},
		{"dense16", softtarget.Encoding{Half: true}},
		{"sparse32@0.5", softtarget.Encoding{Kind: softtarget.Sparse, Threshold: 0.5}},
		{"sparse16@0.5", softtarget.Encoding{Kind: softtarget.Sparse, Half: true, Threshold: 0.5}},
		{"sparse16@0.01", softtarget.Encoding{Kind: softtarget.Sparse, Half: true, Threshold: 0.01}},
	}
	var tab strings.Builder
	fmt.Fprintf(&tab, "\n%-5s %-7s", "input", "classes")
	for _, e := range encs {
		fmt.Fprintf(&tab, " %14s", e.name)
	}
	fmt.Fprintf(&tab, " %8s\n", "stored@.5")
	g := softtargettest.Gen{Rand: rand.New(rand.NewPCG(2026, 11))}
	for _, c := range []int{3, 80} {
		for _, in := range []int{320, 416, 608} {
			m0 := softtargettest.Meta(c, softtarget.Encoding{})
			v := g.View(&m0, 1, 0, in, in)
			cells := 0
			for s := range softtargettest.Strides {
				g := in / softtargettest.Strides[s]
				cells += g * g
			}
			formula := 4 * 3 * (5 + c) * cells
			fmt.Fprintf(&tab, "%-5d %-7d", in, c)
			var sizes []int
			for _, e := range encs {
				m := softtargettest.Meta(c, e.enc)
				n := viewBytes(t, m, v)
				sizes = append(sizes, n)
				fmt.Fprintf(&tab, " %14d", n)
			}
			_, st := expectedDecoded(&softtarget.Meta{Classes: m0.Classes, Masks: m0.Masks, Encoding: encs[2].enc}, v)
			kept := 0
			for _, s := range st {
				for _, k := range s {
					if k {
						kept++
					}
				}
			}
			fmt.Fprintf(&tab, " %7.2f%%\n", 100*float64(kept)/float64(3*cells))
			if sizes[0] < formula || sizes[0] > formula+formula/100+4096 {
				t.Errorf("%d px, %d classes: dense32 %d bytes, formula %d", in, c, sizes[0], formula)
			}
			if d := sizes[1] - formula/2; d < 0 || d > formula/200+4096 {
				t.Errorf("%d px, %d classes: dense16 %d bytes, want about %d", in, c, sizes[1], formula/2)
			}
			// sparse32 stores at least 4 bytes of objectness per anchor cell.
			if min := 4 * 3 * cells; sizes[2] < min || sizes[2] > sizes[0] {
				t.Errorf("%d px, %d classes: sparse32 %d bytes outside [%d, %d]", in, c, sizes[2], min, sizes[0])
			}
			if sizes[3] >= sizes[2] || sizes[4] <= sizes[3] {
				t.Errorf("%d px, %d classes: sparse sizes %v not ordered", in, c, sizes[2:])
			}
		}
	}
	t.Log(tab.String())
	if c := 80; 4*3*(5+c)*(19*19+38*38+76*76) != 7732620 {
		t.Fatal("DESIGN.md's 7.7 MB figure no longer matches the formula")
	}
}

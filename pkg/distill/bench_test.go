package distill

import (
	"math/rand/v2"
	"strconv"
	"testing"
)

// BenchmarkHeads: loss and gradient over the three head outputs of batch 8 at
// 320x320 with 20 classes and 3 anchors per scale ([8, 75, 10|20|40, same]),
// for the l2 (VOC) and fine_grained (COCO) recipes.
func BenchmarkHeads(b *testing.B) {
	shapes := [][]int{{8, 75, 10, 10}, {8, 75, 20, 20}, {8, 75, 40, 40}}
	r := rand.New(rand.NewPCG(7, 8))
	s, t := randSide(r, 3, shapes), randSide(r, 3, shapes)
	grads := make([][]float32, len(s))
	for i := range s {
		grads[i] = make([]float32, len(s[i].Data))
	}
	for _, kind := range []string{"l2", "fine_grained"} {
		for _, w := range []int{1, 0} {
			name := kind + "/workers=" + strconv.Itoa(w)
			if w == 0 {
				name = kind + "/workers=max"
			}
			b.Run(name, func(b *testing.B) {
				l, err := New(kind, Options{NumClasses: 20, Workers: w})
				if err != nil {
					b.Fatal(err)
				}
				defer l.(interface{ Close() error }).Close()
				if _, err := l.Forward(s, t, grads); err != nil { // scratch allocation
					b.Fatal(err)
				}
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, err := l.Forward(s, t, grads); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

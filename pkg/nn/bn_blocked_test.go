package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"yolodistill/pkg/nn/simd"
)

// plainToBlk returns plain [N, C, HW] in the blocked layout of bs channels
// per block, element by element (an implementation of its own, not
// toBlocked's).
func plainToBlk(v []float32, n, c, hw, bs int) []float32 {
	out := make([]float32, len(v))
	for i := range n {
		for ch := range c {
			for p := range hw {
				out[((i*(c/bs)+ch/bs)*hw+p)*bs+ch%bs] = v[(i*c+ch)*hw+p]
			}
		}
	}
	return out
}

// TestBlockedBNMatchesPlain: BatchNorm forward (training, inference),
// backward and their synchronised forms give the same bits in the nChw16c
// and nChw8c layouts as over plain rows, with and without the vector kernels, for every
// activation, spatial sizes around the runs of 256 and 512 and the chains of
// four and two (1, 3, 25, 257, 515), with signed zeros and a NaN among the
// values (a NaN output must be NaN in both).
func TestBlockedBNMatchesPlain(t *testing.T) {
	defer func() { useSIMD = simd.Available }()
	rng := rand.New(rand.NewPCG(11, 12))
	vec := func(n int, specials bool) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * 2)
			if specials && rng.IntN(50) == 0 {
				v[i] = []float32{0, float32(math.Copysign(0, -1)), float32(math.NaN())}[rng.IntN(3)]
			}
		}
		return v
	}
	same := func(a, b float32) bool { return math.Float32bits(a) == math.Float32bits(b) || a != a && b != b }
	for _, hw := range []int{1, 3, 25, 257, 515} {
		for _, n := range []int{1, 3} {
			for _, act := range []Act{ActNone, ActReLU, ActLeaky} {
				for _, vb := range []struct {
					vectors bool
					bs      int
				}{{true, 16}, {false, 16}, {true, 8}, {false, 8}} {
					const C = 32
					vectors, bs := vb.vectors, vb.bs
					name := fmt.Sprintf("hw%d n%d %s simd %v block %d", hw, n, act, vectors, bs)
					useSIMD = vectors && simd.Available
					sz := n * C * hw
					x, dyv := vec(sz, hw > 1), vec(sz, false)
					gamma, beta := vec(C, false), vec(C, false)
					if act == ActNone {
						gamma[3], beta[3] = 1, 0 // exercises applyAct's copy
					}
					rm, rv := vec(C, false), vec(C, false)
					for i := range rv {
						rv[i] = float32(math.Abs(float64(rv[i]))) + 0.1
					}
					type res struct{ y, yi, dx, mean, is, rm, rv, dg, db []float32 }
					run := func(blocked, synced bool) res {
						g := bnGeom{N: n, C: C, HW: hw, cfg: DefaultBN, act: act}
						if blocked {
							g.blk = bs
						}
						conv := func(v []float32) []float32 {
							if blocked {
								return plainToBlk(v, n, C, hw, bs)
							}
							return slices.Clone(v)
						}
						back := func(v []float32) []float32 {
							if blocked {
								return fromBlocked(v, []int{n, C, hw}, bs)
							}
							return v
						}
						r := res{y: make([]float32, sz), yi: make([]float32, sz), dx: make([]float32, sz), mean: make([]float32, C),
							is: make([]float32, C), rm: slices.Clone(rm), rv: slices.Clone(rv), dg: make([]float32, C), db: make([]float32, C)}
						xb, dyb := conv(x), conv(dyv)
						if synced {
							hub := newSyncHub(1)
							sc := newBNSyncScratch("t")
							if err := bnForwardTrainSync(&g, hubReplica{hub, 0}, sc, xb, gamma, beta, r.y, r.mean, r.is, r.rm, r.rv); err != nil {
								t.Fatal(err)
							}
							if err := bnBackwardSync(&g, hubReplica{hub, 0}, sc, xb, r.y, gamma, r.mean, r.is, dyb, r.dx, r.dg, r.db); err != nil {
								t.Fatal(err)
							}
						} else {
							bnForwardTrain(&g, xb, gamma, beta, r.y, r.mean, r.is, r.rm, r.rv)
							bnBackward(&g, xb, r.y, gamma, r.mean, r.is, dyb, r.dx, r.dg, r.db)
						}
						bnForwardInfer(2, &g, xb, gamma, beta, rm, rv, r.yi)
						r.y, r.yi, r.dx = back(r.y), back(r.yi), back(r.dx)
						return r
					}
					for _, synced := range []bool{false, true} {
						want, got := run(false, synced), run(true, synced)
						for _, c := range []struct {
							what string
							a, b []float32
						}{{"y", want.y, got.y}, {"inference y", want.yi, got.yi}, {"dx", want.dx, got.dx}, {"mean", want.mean, got.mean},
							{"invstd", want.is, got.is}, {"running mean", want.rm, got.rm}, {"running var", want.rv, got.rv},
							{"dgamma", want.dg, got.dg}, {"dbeta", want.db, got.db}} {
							for i := range c.a {
								if !same(c.a[i], c.b[i]) {
									t.Fatalf("%s synced %v: %s[%d]: blocked %v (%#x), plain %v (%#x)", name, synced, c.what, i,
										c.b[i], math.Float32bits(c.b[i]), c.a[i], math.Float32bits(c.a[i]))
								}
							}
						}
					}
				}
			}
		}
	}
}

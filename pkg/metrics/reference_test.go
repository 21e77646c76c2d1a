package metrics

import (
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
)

// naiveCOCO is a direct, unoptimised transcription of COCOeval's evaluate and
// accumulate (full curves with ignored detections kept, per (k, a, m) stable
// sorts), used to check EvaluateCOCO's shortcuts bit for bit.
// returns precision [T,R,K,A,M] and recall [T,K,A,M] in COCOeval's own layout.
func naiveCOCO(gt *GroundTruth, dets []Detection, p COCOParams) (prec, rec []float64) {
	var imgs, cats []int64
	for _, im := range gt.Images {
		imgs = append(imgs, im.ID)
	}
	for _, c := range gt.Categories {
		cats = append(cats, c.ID)
	}
	slices.Sort(imgs)
	slices.Sort(cats)
	T, R, K, A, M := len(p.IoUThresholds), len(p.RecallThresholds), len(cats), len(p.AreaRanges), len(p.MaxDets)
	type evalImg struct {
		dtScores []float64
		dtm      [][]int64 // [T][D]
		dtIg     [][]bool
		gtIg     []bool
	}
	evals := make(map[[3]int]*evalImg) // (k, a, i)
	maxLast := p.MaxDets[M-1]
	for k, c := range cats {
		for i, img := range imgs {
			var g []Annotation
			for _, an := range gt.Annotations {
				if an.ImageID == img && an.CategoryID == c {
					g = append(g, an)
				}
			}
			var d []Detection
			for _, dt := range dets {
				if dt.ImageID == img && dt.CategoryID == c {
					d = append(d, dt)
				}
			}
			if len(g) == 0 && len(d) == 0 {
				continue
			}
			sort.SliceStable(d, func(x, y int) bool { return d[x].Score > d[y].Score })
			if len(d) > maxLast {
				d = d[:maxLast]
			}
			for a, rng := range p.AreaRanges {
				ig := make([]bool, len(g))
				for j, an := range g {
					ig[j] = an.Crowd || an.Ignore || an.Area < rng[0] || an.Area > rng[1]
				}
				idx := make([]int, len(g))
				for j := range idx {
					idx[j] = j
				}
				sort.SliceStable(idx, func(x, y int) bool { return !ig[idx[x]] && ig[idx[y]] })
				gs := make([]Annotation, len(g))
				gIg := make([]bool, len(g))
				for j, o := range idx {
					gs[j], gIg[j] = g[o], ig[o]
				}
				e := &evalImg{gtIg: gIg}
				for _, dt := range d {
					e.dtScores = append(e.dtScores, dt.Score)
				}
				gtm := make([][]bool, T)
				e.dtm = make([][]int64, T)
				e.dtIg = make([][]bool, T)
				for t, thr := range p.IoUThresholds {
					gtm[t] = make([]bool, len(gs))
					e.dtm[t] = make([]int64, len(d))
					e.dtIg[t] = make([]bool, len(d))
					for di, dt := range d {
						iou := math.Min(thr, 1-1e-10)
						m := -1
						for gi, gg := range gs {
							if gtm[t][gi] && !gg.Crowd {
								continue
							}
							if m > -1 && !gIg[m] && gIg[gi] {
								break
							}
							v := bbIoU(&dt.BBox, &gg.BBox, gg.Crowd)
							if v < iou {
								continue
							}
							iou, m = v, gi
						}
						if m == -1 {
							continue
						}
						e.dtIg[t][di] = gIg[m]
						e.dtm[t][di] = gs[m].ID
						gtm[t][m] = true
					}
					for di, dt := range d {
						ar := dt.BBox[2] * dt.BBox[3]
						if e.dtm[t][di] == 0 && (ar < rng[0] || ar > rng[1]) {
							e.dtIg[t][di] = true
						}
					}
				}
				evals[[3]int{k, a, i}] = e
			}
		}
	}
	prec = make([]float64, T*R*K*A*M)
	rec = make([]float64, T*K*A*M)
	for i := range prec {
		prec[i] = -1
	}
	for i := range rec {
		rec[i] = -1
	}
	eps := math.Nextafter(1, 2) - 1
	for k := range cats {
		for a := range p.AreaRanges {
			for m, maxDet := range p.MaxDets {
				type ent struct {
					score   float64
					matched []bool
					ignored []bool
				}
				var es []ent
				npig := 0
				any := false
				for i := range imgs {
					e := evals[[3]int{k, a, i}]
					if e == nil {
						continue
					}
					any = true
					for j := 0; j < len(e.dtScores) && j < maxDet; j++ {
						en := ent{score: e.dtScores[j]}
						for t := 0; t < T; t++ {
							en.matched = append(en.matched, e.dtm[t][j] != 0)
							en.ignored = append(en.ignored, e.dtIg[t][j])
						}
						es = append(es, en)
					}
					for _, g := range e.gtIg {
						if !g {
							npig++
						}
					}
				}
				if !any || npig == 0 {
					continue
				}
				sort.SliceStable(es, func(x, y int) bool { return es[x].score > es[y].score })
				for t := 0; t < T; t++ {
					var tps, fps []float64
					tp, fp := 0.0, 0.0
					for _, en := range es {
						if en.matched[t] && !en.ignored[t] {
							tp++
						}
						if !en.matched[t] && !en.ignored[t] {
							fp++
						}
						tps = append(tps, tp)
						fps = append(fps, fp)
					}
					nd := len(tps)
					rc := make([]float64, nd)
					pr := make([]float64, nd)
					for j := range tps {
						rc[j] = tps[j] / float64(npig)
						pr[j] = tps[j] / (fps[j] + tps[j] + eps)
					}
					if nd > 0 {
						rec[((t*K+k)*A+a)*M+m] = rc[nd-1]
					} else {
						rec[((t*K+k)*A+a)*M+m] = 0
					}
					for j := nd - 1; j > 0; j-- {
						if pr[j] > pr[j-1] {
							pr[j-1] = pr[j]
						}
					}
					for r, thr := range p.RecallThresholds {
						pi := sort.SearchFloat64s(rc, thr) // first index with rc >= thr ('left')
						q := 0.0
						if pi < nd {
							q = pr[pi]
						}
						prec[(((t*R+r)*K+k)*A+a)*M+m] = q
					}
				}
			}
		}
	}
	return prec, rec
}

// randomCOCO makes small sets that hit the corner cases: equal scores,
// crowds, ignore flags, annotation id 0, areas at the range limits, more
// detections per image and category than maxDets 10, empty images.
func randomCOCO(r *rand.Rand) (*GroundTruth, []Detection) {
	gt := &GroundTruth{}
	nImg, nCat := 1+r.IntN(6), 1+r.IntN(4)
	for i := 0; i < nImg; i++ {
		gt.Images = append(gt.Images, Image{ID: int64(100 - 3*i)})
	}
	for k := 0; k < nCat; k++ {
		gt.Categories = append(gt.Categories, Category{ID: int64(7 - 2*k)})
	}
	areas := []float64{0, 1024, 9216, 500, 5000, 20000}
	box := func() [4]float64 {
		// coarse grid so that IoUs repeat and hit thresholds
		return [4]float64{float64(r.IntN(8) * 5), float64(r.IntN(8) * 5), float64(5 + r.IntN(8)*5), float64(5 + r.IntN(8)*5)}
	}
	nGT := r.IntN(25)
	for j := 0; j < nGT; j++ {
		b := box()
		ar := b[2] * b[3]
		if r.IntN(2) == 0 {
			ar = areas[r.IntN(len(areas))]
		}
		gt.Annotations = append(gt.Annotations, Annotation{
			ID: int64(j + r.IntN(2)), ImageID: gt.Images[r.IntN(nImg)].ID, CategoryID: gt.Categories[r.IntN(nCat)].ID,
			BBox: b, Area: ar, Crowd: r.IntN(6) == 0, Ignore: r.IntN(10) == 0,
		})
	}
	var dets []Detection
	nDet := r.IntN(60)
	for j := 0; j < nDet; j++ {
		b := box()
		if r.IntN(3) == 0 {
			b[2] = float64(r.IntN(4) * 16) // areas 0, 16*h, ... around the limits
			b[3] = 64
		}
		dets = append(dets, Detection{ImageID: gt.Images[r.IntN(nImg)].ID, CategoryID: gt.Categories[r.IntN(nCat)].ID,
			BBox: b, Score: float64(r.IntN(5)) / 4})
	}
	return gt, dets
}

func TestCOCOMatchesNaiveTranscription(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	for _, p := range []COCOParams{DefaultCOCOParams(), func() COCOParams {
		p := DefaultCOCOParams()
		p.MaxDets = []int{1, 3, 5}
		return p
	}()} {
		for iter := 0; iter < 300; iter++ {
			gt, dets := randomCOCO(r)
			res, err := EvaluateCOCO(gt, dets, p)
			if err != nil {
				t.Fatal(err)
			}
			wantP, wantR := naiveCOCO(gt, dets, p)
			T, R, K, A, M := len(p.IoUThresholds), len(p.RecallThresholds), len(res.CategoryIDs), len(p.AreaRanges), len(p.MaxDets)
			for tt := 0; tt < T; tt++ {
				for k := 0; k < K; k++ {
					for a := 0; a < A; a++ {
						for m := 0; m < M; m++ {
							if g, w := res.RecallAt(tt, k, a, m), wantR[((tt*K+k)*A+a)*M+m]; g != w {
								t.Fatalf("iter %d: recall[%d,%d,%d,%d] = %v, want %v", iter, tt, k, a, m, g, w)
							}
							for rr := 0; rr < R; rr++ {
								if g, w := res.PrecisionAt(tt, rr, k, a, m), wantP[(((tt*R+rr)*K+k)*A+a)*M+m]; g != w {
									t.Fatalf("iter %d: precision[%d,%d,%d,%d,%d] = %v, want %v", iter, tt, rr, k, a, m, g, w)
								}
							}
						}
					}
				}
			}
		}
	}
}

// TestRadixSortDesc checks the radix sort against a stable comparison sort
// on scores with many ties, negative values and both zeros.
func TestRadixSortDesc(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	vals := []float64{0, math.Copysign(0, -1), -1.5, 1, 0.25, 1e-300, -1e300, 0.999, math.SmallestNonzeroFloat64}
	for _, n := range []int{0, 1, 5, 63, 64, 65, 1000, 5000} {
		var v, tmp []keyed
		scores := make([]float64, n)
		for i := range scores {
			if r.IntN(2) == 0 {
				scores[i] = vals[r.IntN(len(vals))]
			} else {
				scores[i] = float64(r.IntN(50))/49 - 0.2
			}
			v = append(v, keyed{descKey(scores[i]), int32(i)})
		}
		v, tmp = radixSortDesc(v, tmp)
		want := make([]int32, n)
		for i := range want {
			want[i] = int32(i)
		}
		slices.SortStableFunc(want, func(x, y int32) int { return cmpDesc(scores[x], scores[y]) })
		for i := range want {
			if v[i].pos != want[i] {
				t.Fatalf("n=%d: position %d holds %d (score %v), want %d (score %v)", n, i, v[i].pos, scores[v[i].pos], want[i], scores[want[i]])
			}
		}
		_ = tmp
	}
}

package anchor

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
)

// Anchor fitting: YOLO anchors chosen by k-means over the (width, height) of
// a dataset's boxes with the distance 1 - IoU, where the IoU of two sizes is
// that of two boxes of those sizes placed at a common corner (ShapeIoU). This
// is the fit testdata/config/gen_bccd_anchors.py does (the BCCD presets'
// anchors): centres start at area quantiles, each box joins the centre it has
// the highest IoU with, each centre moves to the per-dimension median of its
// boxes, until no centre moves (or MaxIter rounds), and the anchors are
// sorted by area, smallest first (YOLOv3's masks give the last three to the
// stride-32 scale).

// Init is how Fit places its first centres.
type Init int

const (
	// InitQuantile (the default) takes the box sizes at area
	// quantiles: sorted by area, the sizes at positions floor((i+0.5)/k*n),
	// i = 0..k-1, as gen_bccd_anchors.py does. It needs no seed. A size equal
	// to one already taken is replaced by the next distinct size in area
	// order, so no two centres start equal.
	InitQuantile Init = iota
	// InitKMeansPP is k-means++ with the 1-IoU distance: the first
	// centre uniformly at random, each next one with probability
	// proportional to the squared distance to the nearest centre so far.
	// Deterministic for a seed.
	InitKMeansPP
)

// String is the name ParseInit accepts.
func (i Init) String() string {
	switch i {
	case InitQuantile:
		return "quantile"
	case InitKMeansPP:
		return "kmeans++"
	}
	return fmt.Sprintf("Init(%d)", int(i))
}

// ParseInit parses "quantile" or "kmeans++".
func ParseInit(s string) (Init, error) {
	switch strings.ToLower(s) {
	case "quantile", "":
		return InitQuantile, nil
	case "kmeans++", "kmeanspp":
		return InitKMeansPP, nil
	}
	return 0, fmt.Errorf("anchor init %q: want quantile or kmeans++", s)
}

// FitOptions configure Fit.
type FitOptions struct {
	K       int    // number of anchors; 9 when <= 0
	Init    Init   // how centres start (default InitQuantile)
	Seed    uint64 // random seed for InitKMeansPP; unused otherwise
	MaxIter int    // k-means rounds at most; 300 when <= 0
}

// DefaultK and DefaultMaxIter are FitOptions' defaults.
const (
	DefaultK       = 9
	DefaultMaxIter = 300
)

// FitResult is Fit's result: the fitted anchors and how well they cover the
// sizes.
type FitResult struct {
	Anchors    []Anchor // K anchors, pixels, sorted by area (ascending; ties keep cluster order)
	MeanIoU    float64  // MeanBestIoU of the fitted sizes with Anchors
	Iterations int      // k-means rounds run (assignment + update)
	Converged  bool     // false when MaxIter rounds ran with centres still moving
}

// Fit fits opt.K anchors to sizes (pixels, all finite and > 0) by
// k-means with the distance 1 - ShapeIoU (see the notes at the top of this file).
// A cluster that loses all its boxes keeps its centre. Centres have stopped
// moving when every coordinate changed by at most 1e-8 + 1e-5*|old| (numpy's
// allclose, as the Python reference). The result is deterministic for the
// same sizes (in the same order) and options. It returns an error, naming
// what is wrong, for a bad K, a non-finite or non-positive size, or fewer
// distinct sizes than K.
func Fit(sizes []Anchor, opt FitOptions) (FitResult, error) {
	k := opt.K
	if k <= 0 {
		k = DefaultK
	}
	maxIter := opt.MaxIter
	if maxIter <= 0 {
		maxIter = DefaultMaxIter
	}
	for i, s := range sizes {
		if !(s.W() > 0 && s.H() > 0) || math.IsInf(s.W(), 0) || math.IsInf(s.H(), 0) {
			return FitResult{}, fmt.Errorf("box size %d is %gx%g; want finite sizes > 0", i, s.W(), s.H())
		}
	}
	if len(sizes) == 0 {
		return FitResult{}, errors.New("no boxes to fit anchors to")
	}
	// Indices of sizes sorted by area (ties by width, then input order),
	// for the quantile init.
	order := make([]int, len(sizes))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		sa, sb := sizes[order[a]], sizes[order[b]]
		if sa.Area() != sb.Area() {
			return sa.Area() < sb.Area()
		}
		return sa.W() < sb.W()
	})
	set := make(map[Anchor]bool, len(sizes))
	for _, s := range sizes {
		set[s] = true
	}
	distinct := len(set)
	if distinct < k {
		return FitResult{}, fmt.Errorf("%d boxes with %d distinct sizes cannot give %d distinct anchors; lower -k", len(sizes), distinct, k)
	}

	var c []Anchor
	switch opt.Init {
	case InitQuantile:
		c = quantileInit(sizes, order, k)
	case InitKMeansPP:
		c = kmeansPPInit(sizes, k, opt.Seed)
	default:
		return FitResult{}, fmt.Errorf("anchor init %v: want quantile or kmeans++", opt.Init)
	}

	assign := make([]int, len(sizes))
	ws := make([][]float64, k)
	hs := make([][]float64, k)
	fit := FitResult{}
	for fit.Iterations < maxIter {
		fit.Iterations++
		for j := range ws {
			ws[j], hs[j] = ws[j][:0], hs[j][:0]
		}
		for i, s := range sizes {
			assign[i], _ = nearest(s, c)
			ws[assign[i]] = append(ws[assign[i]], s.W())
			hs[assign[i]] = append(hs[assign[i]], s.H())
		}
		moved := false
		nc := make([]Anchor, k)
		for j := range nc {
			if len(ws[j]) == 0 {
				nc[j] = c[j]
				continue
			}
			nc[j] = Anchor{median(ws[j]), median(hs[j])}
			if !allClose(nc[j].W(), c[j].W()) || !allClose(nc[j].H(), c[j].H()) {
				moved = true
			}
		}
		if !moved {
			fit.Converged = true
			break
		}
		c = nc
	}
	sortByArea(c)
	fit.Anchors = c
	fit.MeanIoU = MeanBestIoU(sizes, c)
	return fit, nil
}

// allClose is numpy's allclose test for one value: |a-b| <= 1e-8 + 1e-5*|b|.
func allClose(a, b float64) bool { return math.Abs(a-b) <= 1e-8+1e-5*math.Abs(b) }

// median sorts v in place and returns its median (the mean of the two middle
// values for an even length). v must not be empty.
func median(v []float64) float64 {
	sort.Float64s(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

// quantileInit: see InitQuantile. order is sizes' indices by area; the
// caller has checked that there are at least k distinct sizes.
func quantileInit(sizes []Anchor, order []int, k int) []Anchor {
	n := len(sizes)
	c := make([]Anchor, 0, k)
	taken := map[Anchor]bool{}
	for i := 0; i < k; i++ {
		p := int((float64(i) + 0.5) / float64(k) * float64(n))
		for q := 0; q < n; q++ {
			s := sizes[order[(p+q)%n]]
			if !taken[s] {
				taken[s] = true
				c = append(c, s)
				break
			}
		}
	}
	return c
}

// kmeansPPInit: see InitKMeansPP. The caller has checked that there are
// at least k distinct sizes, so a size at distance > 0 exists while fewer than
// k centres are chosen.
func kmeansPPInit(sizes []Anchor, k int, seed uint64) []Anchor {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	c := []Anchor{sizes[rng.IntN(len(sizes))]}
	d2 := make([]float64, len(sizes))
	for len(c) < k {
		total := 0.0
		for i, s := range sizes {
			_, best := nearest(s, c)
			d := 1 - best
			if d < 0 {
				d = 0
			}
			d2[i] = d * d
			total += d2[i]
		}
		r := rng.Float64() * total
		pick := -1
		for i, w := range d2 {
			if w <= 0 {
				continue
			}
			pick = i
			if r < w {
				break
			}
			r -= w
		}
		c = append(c, sizes[pick])
	}
	return c
}

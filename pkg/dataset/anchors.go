package dataset

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

// WH is a box size in pixels: width and height. Anchors are WH values in the
// pixels of the network input.
type WH struct{ W, H float64 }

// Area is W*H.
func (s WH) Area() float64 { return s.W * s.H }

// ShapeIoU is the IoU of two boxes of sizes a and b aligned at a common
// corner: min(aW,bW)*min(aH,bH) / (aW*aH + bW*bH - intersection). It is 0
// when the union is empty (both sizes zero). Sizes are taken as non-negative.
func ShapeIoU(a, b WH) float64 {
	inter := math.Min(a.W, b.W) * math.Min(a.H, b.H)
	union := a.Area() + b.Area() - inter
	if !(union > 0) {
		return 0
	}
	return inter / union
}

// DefaultAnchorSize is the input size, in pixels, that DefaultAnchors were
// fitted for (YOLOv3 on COCO at 608x608).
const DefaultAnchorSize = 608

// DefaultAnchors returns PaddleDetection's (and YOLOv3's) COCO anchors, in
// pixels at a DefaultAnchorSize input, sorted by area. A new slice each call.
func DefaultAnchors() []WH {
	return []WH{{10, 13}, {16, 30}, {33, 23}, {30, 61}, {62, 45}, {59, 119}, {116, 90}, {156, 198}, {373, 326}}
}

// BoxSizes returns the sizes of ds's boxes once every image is resized to
// size x size pixels by stretching (no letterbox), as the YOLOv3 reader does:
// W = (X1-X0) * size / Sample.Width, H = (Y1-Y0) * size / Sample.Height.
// Crowd boxes (COCO iscrowd, never a training target) and boxes with zero
// area are left out; difficult boxes are kept. Samples are taken in order,
// objects in order. It panics if size <= 0.
func BoxSizes(ds *Dataset, size int) []WH {
	if size <= 0 {
		panic(fmt.Sprintf("dataset.BoxSizes: size %d <= 0", size))
	}
	var out []WH
	for _, s := range ds.Samples {
		if s.Width <= 0 || s.Height <= 0 {
			continue
		}
		sx, sy := float64(size)/float64(s.Width), float64(size)/float64(s.Height)
		for _, o := range s.Objects {
			if o.Crowd || o.Box.Empty() {
				continue
			}
			out = append(out, WH{o.Box.W() * sx, o.Box.H() * sy})
		}
	}
	return out
}

// MeanBestIoU is the mean over sizes of the best ShapeIoU each has with any
// anchor: how well the anchors cover the boxes (1 when every size is an
// anchor). 0 when sizes or anchors is empty.
func MeanBestIoU(sizes, anchors []WH) float64 {
	if len(sizes) == 0 || len(anchors) == 0 {
		return 0
	}
	sum := 0.0
	for _, s := range sizes {
		_, best := nearestAnchor(s, anchors)
		sum += best
	}
	return sum / float64(len(sizes))
}

// nearestAnchor is the index of the anchor with the highest ShapeIoU with s
// (the first on ties) and that IoU.
func nearestAnchor(s WH, anchors []WH) (int, float64) {
	bi, best := 0, -1.0
	for j, a := range anchors {
		if v := ShapeIoU(s, a); v > best {
			bi, best = j, v
		}
	}
	return bi, best
}

// AnchorInit is how FitAnchors places its first centres.
type AnchorInit int

const (
	// AnchorInitQuantile (the default) takes the box sizes at area
	// quantiles: sorted by area, the sizes at positions floor((i+0.5)/k*n),
	// i = 0..k-1, as gen_bccd_anchors.py does. It needs no seed. A size equal
	// to one already taken is replaced by the next distinct size in area
	// order, so no two centres start equal.
	AnchorInitQuantile AnchorInit = iota
	// AnchorInitKMeansPP is k-means++ with the 1-IoU distance: the first
	// centre uniformly at random, each next one with probability
	// proportional to the squared distance to the nearest centre so far.
	// Deterministic for a seed.
	AnchorInitKMeansPP
)

// String is the name ParseAnchorInit accepts.
func (i AnchorInit) String() string {
	switch i {
	case AnchorInitQuantile:
		return "quantile"
	case AnchorInitKMeansPP:
		return "kmeans++"
	}
	return fmt.Sprintf("AnchorInit(%d)", int(i))
}

// ParseAnchorInit parses "quantile" or "kmeans++".
func ParseAnchorInit(s string) (AnchorInit, error) {
	switch strings.ToLower(s) {
	case "quantile", "":
		return AnchorInitQuantile, nil
	case "kmeans++", "kmeanspp":
		return AnchorInitKMeansPP, nil
	}
	return 0, fmt.Errorf("anchor init %q: want quantile or kmeans++", s)
}

// AnchorOptions configure FitAnchors.
type AnchorOptions struct {
	K       int        // number of anchors; 9 when <= 0
	Init    AnchorInit // how centres start (default AnchorInitQuantile)
	Seed    uint64     // random seed for AnchorInitKMeansPP; unused otherwise
	MaxIter int        // k-means rounds at most; 300 when <= 0
}

// DefaultAnchorK and DefaultAnchorMaxIter are AnchorOptions' defaults.
const (
	DefaultAnchorK       = 9
	DefaultAnchorMaxIter = 300
)

// AnchorFit is FitAnchors' result.
type AnchorFit struct {
	Anchors    []WH    // K anchors, pixels, sorted by area (ascending; ties keep cluster order)
	MeanIoU    float64 // MeanBestIoU of the fitted sizes with Anchors
	Iterations int     // k-means rounds run (assignment + update)
	Converged  bool    // false when MaxIter rounds ran with centres still moving
}

// FitAnchors fits opt.K anchors to sizes (pixels, all finite and > 0) by
// k-means with the distance 1 - ShapeIoU (see the package's anchor notes).
// A cluster that loses all its boxes keeps its centre. Centres have stopped
// moving when every coordinate changed by at most 1e-8 + 1e-5*|old| (numpy's
// allclose, as the Python reference). The result is deterministic for the
// same sizes (in the same order) and options. It returns an error, naming
// what is wrong, for a bad K, a non-finite or non-positive size, or fewer
// distinct sizes than K.
func FitAnchors(sizes []WH, opt AnchorOptions) (AnchorFit, error) {
	k := opt.K
	if k <= 0 {
		k = DefaultAnchorK
	}
	maxIter := opt.MaxIter
	if maxIter <= 0 {
		maxIter = DefaultAnchorMaxIter
	}
	for i, s := range sizes {
		if !(s.W > 0 && s.H > 0) || math.IsInf(s.W, 0) || math.IsInf(s.H, 0) {
			return AnchorFit{}, fmt.Errorf("box size %d is %gx%g; want finite sizes > 0", i, s.W, s.H)
		}
	}
	if len(sizes) == 0 {
		return AnchorFit{}, errors.New("no boxes to fit anchors to")
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
		return sa.W < sb.W
	})
	set := make(map[WH]bool, len(sizes))
	for _, s := range sizes {
		set[s] = true
	}
	distinct := len(set)
	if distinct < k {
		return AnchorFit{}, fmt.Errorf("%d boxes with %d distinct sizes cannot give %d distinct anchors; lower -k", len(sizes), distinct, k)
	}

	var c []WH
	switch opt.Init {
	case AnchorInitQuantile:
		c = quantileInit(sizes, order, k)
	case AnchorInitKMeansPP:
		c = kmeansPPInit(sizes, k, opt.Seed)
	default:
		return AnchorFit{}, fmt.Errorf("anchor init %v: want quantile or kmeans++", opt.Init)
	}

	assign := make([]int, len(sizes))
	ws := make([][]float64, k)
	hs := make([][]float64, k)
	fit := AnchorFit{}
	for fit.Iterations < maxIter {
		fit.Iterations++
		for j := range ws {
			ws[j], hs[j] = ws[j][:0], hs[j][:0]
		}
		for i, s := range sizes {
			assign[i], _ = nearestAnchor(s, c)
			ws[assign[i]] = append(ws[assign[i]], s.W)
			hs[assign[i]] = append(hs[assign[i]], s.H)
		}
		moved := false
		nc := make([]WH, k)
		for j := range nc {
			if len(ws[j]) == 0 {
				nc[j] = c[j]
				continue
			}
			nc[j] = WH{median(ws[j]), median(hs[j])}
			if !allClose(nc[j].W, c[j].W) || !allClose(nc[j].H, c[j].H) {
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

// sortByArea sorts anchors by area, ascending; equal areas keep their order.
func sortByArea(a []WH) {
	sort.SliceStable(a, func(i, j int) bool { return a[i].Area() < a[j].Area() })
}

// quantileInit: see AnchorInitQuantile. order is sizes' indices by area; the
// caller has checked that there are at least k distinct sizes.
func quantileInit(sizes []WH, order []int, k int) []WH {
	n := len(sizes)
	c := make([]WH, 0, k)
	taken := map[WH]bool{}
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

// kmeansPPInit: see AnchorInitKMeansPP. The caller has checked that there are
// at least k distinct sizes, so a size at distance > 0 exists while fewer than
// k centres are chosen.
func kmeansPPInit(sizes []WH, k int, seed uint64) []WH {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	c := []WH{sizes[rng.IntN(len(sizes))]}
	d2 := make([]float64, len(sizes))
	for len(c) < k {
		total := 0.0
		for i, s := range sizes {
			_, best := nearestAnchor(s, c)
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

// RoundAnchors returns anchors rounded to the given number of decimals (0:
// whole pixels, as YOLO configs write them; negative is taken as 0), sorted
// again by area since rounding can swap near-equal areas. anchors is not
// modified.
func RoundAnchors(anchors []WH, decimals int) []WH {
	if decimals < 0 {
		decimals = 0
	}
	p := math.Pow(10, float64(decimals))
	out := make([]WH, len(anchors))
	for i, a := range anchors {
		out[i] = WH{math.Round(a.W*p) / p, math.Round(a.H*p) / p}
	}
	sortByArea(out)
	return out
}

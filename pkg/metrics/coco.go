package metrics

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
)

// Image is one ground-truth image of a COCO-style set.
type Image struct {
	ID       int64
	FileName string
	Width    int // pixels; 0 when unknown
	Height   int
}

// Category is one class of a COCO-style set.
type Category struct {
	ID   int64
	Name string
}

// Annotation is one ground-truth object.
type Annotation struct {
	ID         int64
	ImageID    int64
	CategoryID int64
	BBox       [4]float64 // x, y, w, h in pixels; covers [x, x+w) x [y, y+h)
	Area       float64    // COCO "area" (segmentation area), used for the area ranges
	Crowd      bool       // COCO "iscrowd": matched by many detections, then ignored
	// Ignore marks an object that is neither required nor penalised (like a
	// crowd region, but with ordinary IoU). The COCO JSON reader never sets it:
	// pycocotools overwrites a file's "ignore" with "iscrowd", so a file's
	// "ignore" has no effect there either. Callers may set it (e.g. for VOC
	// "difficult" objects scored with COCO AP).
	Ignore bool
}

// GroundTruth is a COCO-style ground-truth set.
type GroundTruth struct {
	Images      []Image
	Categories  []Category
	Annotations []Annotation
}

// Detection is one detector output in COCO results form.
type Detection struct {
	ImageID    int64
	CategoryID int64
	BBox       [4]float64 // x, y, w, h in pixels, like Annotation.BBox
	Score      float64
}

// COCOParams are COCOeval's parameters for iouType "bbox".
type COCOParams struct {
	IoUThresholds    []float64    // T thresholds, ascending
	RecallThresholds []float64    // R recall points, ascending
	AreaRanges       [][2]float64 // A ranges [lo, hi] on the annotation area, inclusive
	AreaLabels       []string     // A labels ("all", "small", "medium", "large")
	MaxDets          []int        // M limits on detections per image and category, ascending
}

// linspace reproduces numpy.linspace(start, stop, n, endpoint=True) bit for
// bit: start + i*step with step = (stop-start)/(n-1), the last value exactly stop.
func linspace(start, stop float64, n int) []float64 {
	step := (stop - start) / float64(n-1)
	v := make([]float64, n)
	for i := range v {
		v[i] = float64(float64(i)*step) + start // explicit conversion: no fused multiply-add
	}
	v[n-1] = stop
	return v
}

// DefaultCOCOParams returns COCOeval's defaults: IoU .50:.05:.95 (10), recall
// 0:.01:1 (101), areas all/small/medium/large (0-1e10, 0-32², 32²-96², 96²-1e10)
// and maxDets 1, 10, 100. The thresholds equal numpy's linspace values exactly.
func DefaultCOCOParams() COCOParams {
	return COCOParams{
		IoUThresholds:    linspace(0.5, 0.95, 10),
		RecallThresholds: linspace(0, 1, 101),
		AreaRanges:       [][2]float64{{0, 1e10}, {0, 32 * 32}, {32 * 32, 96 * 96}, {96 * 96, 1e10}},
		AreaLabels:       []string{"all", "small", "medium", "large"},
		MaxDets:          []int{1, 10, 100},
	}
}

func (p COCOParams) validate() error {
	if len(p.IoUThresholds) == 0 || len(p.RecallThresholds) == 0 || len(p.AreaRanges) == 0 || len(p.MaxDets) == 0 {
		return fmt.Errorf("COCO parameters: empty threshold, area or maxDets list")
	}
	if len(p.IoUThresholds) > 16 {
		return fmt.Errorf("COCO parameters: at most 16 IoU thresholds, got %d", len(p.IoUThresholds))
	}
	if len(p.AreaLabels) != len(p.AreaRanges) {
		return fmt.Errorf("COCO parameters: %d area labels for %d area ranges", len(p.AreaLabels), len(p.AreaRanges))
	}
	if !sort.IntsAreSorted(p.MaxDets) || p.MaxDets[0] < 0 {
		return fmt.Errorf("COCO parameters: maxDets %v must be non-negative and ascending", p.MaxDets)
	}
	if !sort.Float64sAreSorted(p.RecallThresholds) {
		return fmt.Errorf("COCO parameters: recall thresholds must be ascending")
	}
	return nil
}

// COCOResult holds COCOeval's accumulated arrays and its summary.
//
// Precision holds COCOeval.eval["precision"] (indexed [t, r, k, a, m] there)
// and Recall holds eval["recall"] ([t, k, a, m]); read them with PrecisionAt
// and RecallAt. They are stored category-major, Precision as [K, A, M, T, R]
// and Recall as [K, A, M, T], so that one category's curves are contiguous.
// Entries are -1 where a category has no non-ignored ground truth in an area
// range.
type COCOResult struct {
	Params        COCOParams
	CategoryIDs   []int64  // K category ids, ascending (COCOeval's catIds)
	CategoryNames []string // names of CategoryIDs
	Precision     []float64
	Recall        []float64
	// Stats are COCOeval.stats for the default parameters: AP, AP50, AP75,
	// AP small/medium/large, AR1, AR10, AR100, AR small/medium/large; -1 where
	// nothing was measurable. With other parameters an entry whose setting is
	// absent (e.g. IoU 0.75 not among the thresholds) is -1.
	Stats [12]float64
}

// PrecisionAt returns precision[t, r, k, a, m].
func (res *COCOResult) PrecisionAt(t, r, k, a, m int) float64 {
	p := &res.Params
	T, R, A, M := len(p.IoUThresholds), len(p.RecallThresholds), len(p.AreaRanges), len(p.MaxDets)
	return res.Precision[(((k*A+a)*M+m)*T+t)*R+r]
}

// RecallAt returns recall[t, k, a, m].
func (res *COCOResult) RecallAt(t, k, a, m int) float64 {
	p := &res.Params
	T, A, M := len(p.IoUThresholds), len(p.AreaRanges), len(p.MaxDets)
	return res.Recall[((k*A+a)*M+m)*T+t]
}

// ClassAP is category k's AP@[.50:.95] for area "all" (index 0) and the largest
// maxDets: the mean of precision[:, :, k, 0, M-1] over entries > -1, as the
// usual per-category table built on COCOeval computes it. It is -1 when the
// category has no (non-ignored) ground truth.
func (res *COCOResult) ClassAP(k int) float64 {
	p := &res.Params
	sum, n := 0.0, 0
	for t := range p.IoUThresholds {
		for r := range p.RecallThresholds {
			if v := res.PrecisionAt(t, r, k, 0, len(p.MaxDets)-1); v > -1 {
				sum += v
				n++
			}
		}
	}
	if n == 0 {
		return -1
	}
	return sum / float64(n)
}

// ClassAP50 is category k's AP at IoU 0.50 (area "all", the largest
// maxDets): the mean of precision[t50, :, k, 0, M-1] over entries > -1, the
// per-category counterpart of Stats[1]. It is -1 when the category has no
// ground truth or 0.50 is not among the IoU thresholds.
func (res *COCOResult) ClassAP50(k int) float64 {
	p := &res.Params
	for t, thr := range p.IoUThresholds {
		if math.Abs(thr-0.5) > 1e-9 {
			continue
		}
		sum, n := 0.0, 0
		for r := range p.RecallThresholds {
			if v := res.PrecisionAt(t, r, k, 0, len(p.MaxDets)-1); v > -1 {
				sum += v
				n++
			}
		}
		if n > 0 {
			return sum / float64(n)
		}
	}
	return -1
}

// PRCurve returns category k's interpolated precision at each recall
// threshold for IoU threshold index t, area "all" and the largest maxDets.
// Entries are -1 when the category has no ground truth.
//
// returns: [R]
func (res *COCOResult) PRCurve(k, t int) []float64 {
	p := &res.Params
	out := make([]float64, len(p.RecallThresholds))
	for r := range out {
		out[r] = res.PrecisionAt(t, r, k, 0, len(p.MaxDets)-1)
	}
	return out
}

// cocoIndex is the ground truth and detections laid out flat, grouped by
// (image, category) bucket b = i*K + k with images and categories in
// ascending id order (COCOeval's imgIds and catIds).
type cocoIndex struct {
	I, K int
	// ground truth, bucket-major, file order inside a bucket
	gtStart []int32 // [K*I+1]
	gtBox   [][4]float64
	gtArea  []float64
	gtCrowd []bool
	gtIgn   []bool // crowd or Ignore
	gtZero  []bool // annotation id 0: COCOeval stores match ids, so a match to it reads as "unmatched"
	// detections, bucket-major, sorted by score (stable) inside a bucket;
	// only the first maxDets[-1] of a bucket are evaluated
	dtStart []int32 // [K*I+1]
	dtLen   []int32 // [K*I] evaluated detections per bucket
	dtRank  []int32 // rank of a detection inside its bucket
	dtBox   [][4]float64
	dtScore []float64
}

// EvaluateCOCO runs COCOeval (iouType "bbox") evaluate, accumulate and
// summarize on gt and dets with parameters p.
//
// Semantics follow pycocotools: images and categories are those of gt (sorted
// ids); detections are taken per (image, category), sorted by score with a
// stable sort, cut to the largest maxDets; each is matched greedily to the
// unmatched ground truth of best IoU >= threshold, preferring non-ignored
// ground truth; crowd ground truth can be matched many times and, like
// ignored ground truth, makes its matches ignored; unmatched detections
// outside the area range are ignored. Precision is made monotone from the
// right and read at the recall thresholds with a left binary search.
//
// Kept for exactness: a detection matched to ground truth whose annotation id
// is 0 counts as unmatched (COCOeval stores the matched id, 0 meaning none),
// and with maxDets 1 and 10 the matches made with the largest maxDets are
// reused, not recomputed.
//
// An empty dets gives precision and recall 0 wherever ground truth exists
// (pycocotools refuses an empty result list). It returns an error for a
// detection on an image or category not in gt, or with a non-finite score or
// box, or a negative width or height, and for duplicate image or category ids.
func EvaluateCOCO(gt *GroundTruth, dets []Detection, p COCOParams) (*COCOResult, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	ix, names, catIDs, err := buildCOCOIndex(gt, dets, p)
	if err != nil {
		return nil, err
	}
	res := &COCOResult{Params: p, CategoryIDs: catIDs, CategoryNames: names}
	A := len(p.AreaRanges)
	// bits[a][pos]: low 16 bits "matched" per IoU threshold, high 16 "ignored".
	bits := make([][]uint32, A)
	for a := range bits {
		bits[a] = make([]uint32, len(ix.dtScore))
	}
	ix.evaluate(p, bits)
	// npig[k*A+a]: non-ignored ground truth of category k in area a.
	npig := make([]int, ix.K*A)
	for b := 0; b < ix.K*ix.I; b++ {
		k := b % ix.K
		for g := ix.gtStart[b]; g < ix.gtStart[b+1]; g++ {
			if ix.gtIgn[g] {
				continue
			}
			for a, rng := range p.AreaRanges {
				if ar := ix.gtArea[g]; !(ar < rng[0] || ar > rng[1]) {
					npig[k*A+a]++
				}
			}
		}
	}
	res.Precision, res.Recall = ix.accumulate(p, bits, npig)
	res.Stats = res.summarizeStats()
	return res, nil
}

func buildCOCOIndex(gt *GroundTruth, dets []Detection, p COCOParams) (*cocoIndex, []string, []int64, error) {
	imgIDs := make([]int64, len(gt.Images))
	for i, im := range gt.Images {
		imgIDs[i] = im.ID
	}
	slices.Sort(imgIDs)
	for i := 1; i < len(imgIDs); i++ {
		if imgIDs[i] == imgIDs[i-1] {
			return nil, nil, nil, fmt.Errorf("ground truth: image id %d appears twice", imgIDs[i])
		}
	}
	cats := slices.Clone(gt.Categories)
	slices.SortFunc(cats, func(a, b Category) int { return cmpInt64(a.ID, b.ID) })
	catIDs := make([]int64, len(cats))
	names := make([]string, len(cats))
	for k, c := range cats {
		catIDs[k], names[k] = c.ID, c.Name
		if k > 0 && c.ID == cats[k-1].ID {
			return nil, nil, nil, fmt.Errorf("ground truth: category id %d appears twice", c.ID)
		}
	}
	imgIdx := make(map[int64]int32, len(imgIDs))
	for i, id := range imgIDs {
		imgIdx[id] = int32(i)
	}
	catIdx := make(map[int64]int32, len(catIDs))
	for k, id := range catIDs {
		catIdx[id] = int32(k)
	}
	I, K := len(imgIDs), len(catIDs)
	if int64(I)*int64(K) >= 1<<31-1 || len(dets) >= 1<<31-1 || len(gt.Annotations) >= 1<<31-1 {
		return nil, nil, nil, fmt.Errorf("COCO evaluation: %d images x %d categories, %d detections: too large", I, K, len(dets))
	}
	nb := K * I
	ix := &cocoIndex{I: I, K: K}

	// Ground truth: counting sort into buckets, stable.
	gtBucket := make([]int32, len(gt.Annotations))
	ix.gtStart = make([]int32, nb+1)
	for j, an := range gt.Annotations {
		i, ok := imgIdx[an.ImageID]
		if !ok {
			return nil, nil, nil, fmt.Errorf("ground truth: annotation id %d: image id %d is not among the images", an.ID, an.ImageID)
		}
		k, ok := catIdx[an.CategoryID]
		if !ok {
			return nil, nil, nil, fmt.Errorf("ground truth: annotation id %d: category id %d is not among the categories", an.ID, an.CategoryID)
		}
		if !finite4(an.BBox) || math.IsNaN(an.Area) {
			return nil, nil, nil, fmt.Errorf("ground truth: annotation id %d: bbox %v or area %v is not finite", an.ID, an.BBox, an.Area)
		}
		b := i*int32(K) + k
		gtBucket[j] = b
		ix.gtStart[b+1]++
	}
	for b := 0; b < nb; b++ {
		ix.gtStart[b+1] += ix.gtStart[b]
	}
	n := len(gt.Annotations)
	ix.gtBox = make([][4]float64, n)
	ix.gtArea = make([]float64, n)
	ix.gtCrowd = make([]bool, n)
	ix.gtIgn = make([]bool, n)
	ix.gtZero = make([]bool, n)
	fill := slices.Clone(ix.gtStart[:nb])
	for j, an := range gt.Annotations {
		pos := fill[gtBucket[j]]
		fill[gtBucket[j]]++
		ix.gtBox[pos] = an.BBox
		ix.gtArea[pos] = an.Area
		ix.gtCrowd[pos] = an.Crowd
		ix.gtIgn[pos] = an.Crowd || an.Ignore
		ix.gtZero[pos] = an.ID == 0
	}

	// Detections: counting sort into buckets (file order), then a stable sort
	// by descending score inside each bucket.
	dtBucket := make([]int32, len(dets))
	ix.dtStart = make([]int32, nb+1)
	for j, d := range dets {
		i, ok := imgIdx[d.ImageID]
		if !ok {
			return nil, nil, nil, fmt.Errorf("detection %d: image id %d is not in the ground truth", j, d.ImageID)
		}
		k, ok := catIdx[d.CategoryID]
		if !ok {
			return nil, nil, nil, fmt.Errorf("detection %d: category id %d is not in the ground truth", j, d.CategoryID)
		}
		if math.IsNaN(d.Score) || math.IsInf(d.Score, 0) {
			return nil, nil, nil, fmt.Errorf("detection %d: score %v is not finite", j, d.Score)
		}
		if !finite4(d.BBox) {
			return nil, nil, nil, fmt.Errorf("detection %d: bbox %v is not finite", j, d.BBox)
		}
		if d.BBox[2] < 0 || d.BBox[3] < 0 {
			return nil, nil, nil, fmt.Errorf("detection %d: bbox %v has a negative width or height", j, d.BBox)
		}
		b := i*int32(K) + k
		dtBucket[j] = b
		ix.dtStart[b+1]++
	}
	for b := 0; b < nb; b++ {
		ix.dtStart[b+1] += ix.dtStart[b]
	}
	order := make([]int32, len(dets))
	fill = slices.Clone(ix.dtStart[:nb])
	for j := range dets {
		order[fill[dtBucket[j]]] = int32(j)
		fill[dtBucket[j]]++
	}
	maxLast := int32(p.MaxDets[len(p.MaxDets)-1])
	ix.dtLen = make([]int32, nb)
	for b := 0; b < nb; b++ {
		seg := order[ix.dtStart[b]:ix.dtStart[b+1]]
		if len(seg) <= 16 {
			// stable insertion sort, descending score
			for i := 1; i < len(seg); i++ {
				x := seg[i]
				sx := dets[x].Score
				j := i
				for j > 0 && dets[seg[j-1]].Score < sx {
					seg[j] = seg[j-1]
					j--
				}
				seg[j] = x
			}
		} else {
			slices.SortStableFunc(seg, func(x, y int32) int { return cmpDesc(dets[x].Score, dets[y].Score) })
		}
		ix.dtLen[b] = min(int32(len(seg)), maxLast)
	}
	ix.dtRank = make([]int32, len(dets))
	for b := 0; b < nb; b++ {
		for pos := ix.dtStart[b]; pos < ix.dtStart[b+1]; pos++ {
			ix.dtRank[pos] = pos - ix.dtStart[b]
		}
	}
	ix.dtBox = make([][4]float64, len(dets))
	ix.dtScore = make([]float64, len(dets))
	for pos, j := range order {
		ix.dtBox[pos] = dets[j].BBox
		ix.dtScore[pos] = dets[j].Score
	}
	return ix, names, catIDs, nil
}

func finite4(v [4]float64) bool {
	for _, x := range v {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return false
		}
	}
	return true
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// cmpDesc orders higher scores first (ties compare equal).
func cmpDesc(a, b float64) int {
	switch {
	case a > b:
		return -1
	case a < b:
		return 1
	}
	return 0
}

// bbIoU is pycocotools' bbIou for one pair: boxes x, y, w, h; for crowd
// ground truth the union is the detection's area.
func bbIoU(d, g *[4]float64, crowd bool) float64 {
	// inputs are finite, so plain comparisons equal C's fmin/fmax
	w := min(d[2]+d[0], g[2]+g[0]) - max(d[0], g[0])
	if w <= 0 {
		return 0
	}
	h := min(d[3]+d[1], g[3]+g[1]) - max(d[1], g[1])
	if h <= 0 {
		return 0
	}
	inter := float64(w * h)
	da := float64(d[2] * d[3])
	u := da
	if !crowd {
		u = float64(da+float64(g[2]*g[3])) - inter
	}
	return inter / u
}

// smallWork is the detection count under which one goroutine is faster
// than several (measured: the 100-image, 734-detection fixture takes half
// the CPU time on one).
const smallWork = 20000

// workers is the number of goroutines used for n independent jobs on
// nDets detections in all.
func workers(n, nDets int) int {
	w := runtime.GOMAXPROCS(0)
	if nDets < smallWork {
		w = 1
	}
	if n < w {
		w = n
	}
	if w < 1 {
		w = 1
	}
	return w
}

// evaluate is COCOeval.evaluate: per (category, image) bucket and area
// range, it matches detections to ground truth and records, per detection
// and IoU threshold, whether it is matched and whether it is ignored.
func (ix *cocoIndex) evaluate(p COCOParams, bits [][]uint32) {
	nb := ix.K * ix.I
	// Only buckets with detections produce anything to accumulate.
	var todo []int32
	for b := 0; b < nb; b++ {
		if ix.dtLen[b] > 0 {
			todo = append(todo, int32(b))
		}
	}
	const chunk = 64
	var next atomic.Int64
	var wg sync.WaitGroup
	nw := workers((len(todo)+chunk-1)/chunk, len(ix.dtScore))
	for w := 0; w < nw; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := &evalScratch{thr: make([]float64, len(p.IoUThresholds))}
			for t, thr := range p.IoUThresholds {
				s.thr[t] = math.Min(thr, 1-1e-10)
			}
			for {
				lo := int(next.Add(chunk)) - chunk
				if lo >= len(todo) {
					return
				}
				for _, b := range todo[lo:min(lo+chunk, len(todo))] {
					ix.evaluateBucket(int(b), p, bits, s)
				}
			}
		}()
	}
	wg.Wait()
}

type evalScratch struct {
	thr   []float64 // IoU thresholds capped at 1-1e-10, as COCOeval caps them
	ious  []float64 // [D, G] in sorted-gt order
	perm  []int32   // sorted gt order -> bucket gt offset
	gtIg  []bool    // per sorted gt
	crowd []bool
	zero  []bool
	taken []bool // [T, G] gt already matched at threshold t
	raw   []float64
}

func (ix *cocoIndex) evaluateBucket(b int, p COCOParams, bits [][]uint32, s *evalScratch) {
	g0, g1 := int(ix.gtStart[b]), int(ix.gtStart[b+1])
	d0 := int(ix.dtStart[b])
	D, G := int(ix.dtLen[b]), g1-g0
	T := len(p.IoUThresholds)
	if G == 0 {
		// nothing to match: a detection is ignored exactly when outside the area range
		all := uint32(1)<<T - 1
		for a, rng := range p.AreaRanges {
			dst := bits[a][d0 : d0+D]
			for d := range dst {
				box := &ix.dtBox[d0+d]
				if dArea := float64(box[2] * box[3]); dArea < rng[0] || dArea > rng[1] {
					dst[d] = all << 16
				} else {
					dst[d] = 0
				}
			}
		}
		return
	}
	// IoU of every detection with every ground truth, in file order of the gt.
	s.raw = growF(s.raw, D*G)
	for d := 0; d < D; d++ {
		db := &ix.dtBox[d0+d]
		for g := 0; g < G; g++ {
			s.raw[d*G+g] = bbIoU(db, &ix.gtBox[g0+g], ix.gtCrowd[g0+g])
		}
	}
	s.ious = growF(s.ious, D*G)
	s.perm = growI(s.perm, G)
	s.gtIg = growB(s.gtIg, G)
	s.crowd = growB(s.crowd, G)
	s.zero = growB(s.zero, G)
	s.taken = growB(s.taken, T*G)
	for a, rng := range p.AreaRanges {
		// gt order: non-ignored first, file order kept (a stable argsort of the flags)
		n := 0
		for pass := 0; pass < 2; pass++ {
			for g := 0; g < G; g++ {
				ar := ix.gtArea[g0+g]
				ig := ix.gtIgn[g0+g] || ar < rng[0] || ar > rng[1]
				if ig == (pass == 1) {
					s.perm[n] = int32(g)
					s.gtIg[n] = ig
					s.crowd[n] = ix.gtCrowd[g0+g]
					s.zero[n] = ix.gtZero[g0+g]
					n++
				}
			}
		}
		for d := 0; d < D; d++ {
			row := s.raw[d*G : d*G+G]
			out := s.ious[d*G : d*G+G]
			for j := 0; j < G; j++ {
				out[j] = row[s.perm[j]]
			}
		}
		clear(s.taken[:T*G])
		dst := bits[a][d0 : d0+D]
		for d := 0; d < D; d++ {
			box := &ix.dtBox[d0+d]
			dArea := float64(box[2] * box[3])
			areaOut := dArea < rng[0] || dArea > rng[1]
			row := s.ious[d*G : d*G+G]
			var v uint32
			for t, iou := range s.thr {
				m := -1
				taken := s.taken[t*G : t*G+G]
				for g := 0; g < G; g++ {
					if taken[g] && !s.crowd[g] {
						continue
					}
					if m > -1 && !s.gtIg[m] && s.gtIg[g] {
						break
					}
					if row[g] < iou {
						continue
					}
					iou = row[g]
					m = g
				}
				unmatched := m == -1
				if !unmatched {
					taken[m] = true
					if s.gtIg[m] {
						v |= 1 << (16 + t)
					}
					unmatched = s.zero[m]
				}
				if unmatched {
					if areaOut {
						v |= 1 << (16 + t)
					}
				} else {
					v |= 1 << t
				}
			}
			dst[d] = v
		}
	}
}

func growF(s []float64, n int) []float64 {
	if cap(s) < n {
		return make([]float64, n)
	}
	return s[:n]
}

func growI(s []int32, n int) []int32 {
	if cap(s) < n {
		return make([]int32, n)
	}
	return s[:n]
}

func growB(s []bool, n int) []bool {
	if cap(s) < n {
		return make([]bool, n)
	}
	return s[:n]
}

// accumulate is COCOeval.accumulate. Per category it orders that category's
// detections over all images by descending score, ties broken by image order
// then rank inside the image (what numpy's stable mergesort of the
// concatenated per-image lists gives), then for each maxDets, area range and
// IoU threshold it builds the precision/recall curve.
//
// Only true positives are recorded on the curve. This reads the same values
// as COCOeval's full curve: ignored detections add neither a true nor a false
// positive (they repeat the previous point); a false positive repeats the
// previous recall with a lower precision, so it never raises the
// monotone-from-the-right precision, and the first point reaching a recall
// threshold > 0 is a true positive. At threshold 0 COCOeval reads the
// maximum precision of the whole curve, which is the first true positive's
// value after the right-to-left maximum.
//
// returns precision: [K, A, M, T, R], recall: [K, A, M, T]
func (ix *cocoIndex) accumulate(p COCOParams, bits [][]uint32, npig []int) (prec, rec []float64) {
	T, R, K, A, M := len(p.IoUThresholds), len(p.RecallThresholds), ix.K, len(p.AreaRanges), len(p.MaxDets)
	prec = make([]float64, T*R*K*A*M)
	rec = make([]float64, T*K*A*M)
	eps := math.Nextafter(1, 2) - 1 // np.spacing(1)
	var next atomic.Int64
	var wg sync.WaitGroup
	nw := workers(K, len(ix.dtScore))
	for w := 0; w < nw; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var order, tmp []keyed
			var keep []int32
			var sub []uint32
			vsAll := make([][]uint32, A)
			rcsT, prsT := make([][]float64, T), make([][]float64, T)
			tpT, fpT := make([]int, T), make([]int, T)
			allIgn := (uint32(1)<<T - 1) << 16
			for {
				k := int(next.Add(1)) - 1
				if k >= K {
					return
				}
				// the category's evaluated detections, bucket by bucket (image order)
				order = order[:0]
				maxLen := int32(0)
				for i := 0; i < ix.I; i++ {
					b := i*ix.K + k
					d0 := ix.dtStart[b]
					for r := int32(0); r < ix.dtLen[b]; r++ {
						order = append(order, keyed{descKey(ix.dtScore[d0+r]), d0 + r})
					}
					maxLen = max(maxLen, ix.dtLen[b])
				}
				// descending score; ties keep position order (image, then rank)
				order, tmp = radixSortDesc(order, tmp)
				// each area's detection words in score order, gathered once
				for a := 0; a < A; a++ {
					ba := bits[a]
					va := vsAll[a][:0]
					for _, o := range order {
						va = append(va, ba[o.pos])
					}
					vsAll[a] = va
				}
				for m := M - 1; m >= 0; m-- {
					maxDet := int32(p.MaxDets[m])
					if m < M-1 && maxLen <= maxDet {
						// no image has more detections than maxDet: same curves as m+1
						for a := 0; a < A; a++ {
							src := ((k*A+a)*M + m + 1) * T
							dst := ((k*A+a)*M + m) * T
							copy(prec[dst*R:(dst+T)*R], prec[src*R:(src+T)*R])
							copy(rec[dst:dst+T], rec[src:src+T])
						}
						continue
					}
					all := maxLen <= maxDet
					if !all {
						keep = keep[:0]
						for j, o := range order {
							if ix.dtRank[o.pos] < maxDet {
								keep = append(keep, int32(j))
							}
						}
					}
					for a := 0; a < A; a++ {
						np := npig[k*A+a]
						base := ((k*A+a)*M + m) * T
						if np == 0 {
							for i := base * R; i < (base+T)*R; i++ {
								prec[i] = -1
							}
							for i := base; i < base+T; i++ {
								rec[i] = -1
							}
							continue
						}
						fnp := float64(np)
						vs := vsAll[a]
						if !all {
							sub = sub[:0]
							for _, j := range keep {
								sub = append(sub, vs[j])
							}
							vs = sub
						}
						// One pass for all thresholds. Most detections are false
						// positives at every threshold (word 0) or ignored at every
						// one; only the others need a look per threshold.
						for t := 0; t < T; t++ {
							rcsT[t], prsT[t], tpT[t], fpT[t] = rcsT[t][:0], prsT[t][:0], 0, 0
						}
						common := 0 // false positives at every threshold so far
						for _, v := range vs {
							if v == 0 {
								common++
								continue
							}
							if v&allIgn == allIgn {
								continue
							}
							for t := 0; t < T; t++ {
								if v&(1<<(16+t)) != 0 {
									continue
								}
								if v&(1<<t) == 0 {
									fpT[t]++
									continue
								}
								tpT[t]++
								tp, fp := float64(tpT[t]), float64(common+fpT[t])
								rcsT[t] = append(rcsT[t], tp/fnp)
								prsT[t] = append(prsT[t], tp/(float64(fp+tp)+eps))
							}
						}
						for t := 0; t < T; t++ {
							rcs, prs := rcsT[t], prsT[t]
							rec[base+t] = float64(tpT[t]) / fnp // 0 when there is no detection
							nd := len(prs)
							for i := nd - 1; i > 0; i-- {
								if prs[i] > prs[i-1] {
									prs[i-1] = prs[i]
								}
							}
							q := prec[(base+t)*R : (base+t+1)*R]
							i := 0
							for r, thr := range p.RecallThresholds {
								for i < nd && rcs[i] < thr {
									i++
								}
								if i >= nd {
									break // the rest stay 0, as COCOeval's try/except leaves them
								}
								q[r] = prs[i]
							}
						}
					}
				}
			}
		}()
	}
	wg.Wait()
	return prec, rec
}

// keyed is a detection position with its sort key.
type keyed struct {
	key uint64 // descKey(score)
	pos int32
}

// descKey maps a finite score to a key whose ascending order is the scores'
// descending order (IEEE bits made monotone, then inverted).
func descKey(s float64) uint64 {
	b := math.Float64bits(s)
	if s == 0 {
		b = 0 // -0 and +0 are equal scores
	}
	if b>>63 != 0 {
		b = ^b
	} else {
		b |= 1 << 63
	}
	return ^b
}

// radixSortDesc sorts v by key, stably (LSD radix, 8 bits a pass, passes
// where every key has the same byte skipped). tmp is scratch; both slices
// are returned for reuse, the sorted one first.
func radixSortDesc(v, tmp []keyed) ([]keyed, []keyed) {
	n := len(v)
	if n < 64 {
		// insertion sort is stable
		for i := 1; i < n; i++ {
			x := v[i]
			j := i
			for j > 0 && v[j-1].key > x.key {
				v[j] = v[j-1]
				j--
			}
			v[j] = x
		}
		return v, tmp
	}
	var hist [8][256]int
	for _, e := range v {
		k := e.key
		for d := 0; d < 8; d++ {
			hist[d][byte(k>>(8*d))]++
		}
	}
	if cap(tmp) < n {
		tmp = make([]keyed, n)
	}
	tmp = tmp[:n]
	for d := 0; d < 8; d++ {
		h := &hist[d]
		if h[byte(v[0].key>>(8*d))] == n {
			continue // every key has this byte
		}
		sum := 0
		for i := range h {
			c := h[i]
			h[i] = sum
			sum += c
		}
		for _, e := range v {
			b := byte(e.key >> (8 * d))
			tmp[h[b]] = e
			h[b]++
		}
		v, tmp = tmp, v
	}
	return v, tmp
}

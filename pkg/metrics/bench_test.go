package metrics

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkCOCOFixture100 times evaluate+accumulate+summarize (what
// EvaluateCOCO does) on the 100-image val2014 fixture, JSON reading excluded.
func BenchmarkCOCOFixture100(b *testing.B) {
	exp := loadExpected(b)
	gt, dets := loadCase(b, exp["val2014_100"])
	benchEvaluate(b, gt, dets)
}

// syntheticCOCO builds a deterministic COCO-like set: nImg images of 640x480,
// 80 categories, 1-15 objects per image (some crowd), and detsPerImg
// detections per image, about half of them jittered copies of objects.
func syntheticCOCO(nImg, detsPerImg int, seed uint64) (*GroundTruth, []Detection) {
	r := rand.New(rand.NewPCG(seed, 1))
	gt := &GroundTruth{}
	for k := 1; k <= 80; k++ {
		gt.Categories = append(gt.Categories, Category{ID: int64(k), Name: "c"})
	}
	dets := make([]Detection, 0, nImg*detsPerImg)
	annID := int64(1)
	randBox := func() [4]float64 {
		w := 4 + r.Float64()*300
		h := 4 + r.Float64()*300
		return [4]float64{r.Float64() * (640 - w), r.Float64() * (480 - h), w, h}
	}
	for i := 0; i < nImg; i++ {
		imgID := int64(1000 + 7*i)
		gt.Images = append(gt.Images, Image{ID: imgID, Width: 640, Height: 480})
		nObj := 1 + r.IntN(15)
		first := len(gt.Annotations)
		for j := 0; j < nObj; j++ {
			bb := randBox()
			gt.Annotations = append(gt.Annotations, Annotation{
				ID: annID, ImageID: imgID, CategoryID: int64(1 + r.IntN(80)), BBox: bb,
				Area: bb[2] * bb[3] * (0.5 + 0.4*r.Float64()), Crowd: r.IntN(50) == 0,
			})
			annID++
		}
		objs := gt.Annotations[first:]
		for j := 0; j < detsPerImg; j++ {
			d := Detection{ImageID: imgID, Score: float64(r.IntN(1000)) / 1000}
			if j%2 == 0 {
				o := objs[r.IntN(len(objs))]
				bb := o.BBox
				for c := range bb {
					bb[c] += (r.Float64() - 0.5) * 0.3 * bb[2+c%2]
				}
				bb[2], bb[3] = max(bb[2], 1), max(bb[3], 1)
				d.BBox, d.CategoryID = bb, o.CategoryID
			} else {
				d.BBox, d.CategoryID = randBox(), int64(1+r.IntN(80))
			}
			dets = append(dets, d)
		}
	}
	return gt, dets
}

// BenchmarkCOCOSynthetic5000 times EvaluateCOCO on 5,000 generated images
// with 100 detections each.
func BenchmarkCOCOSynthetic5000(b *testing.B) {
	gt, dets := syntheticCOCO(5000, 100, 42)
	benchEvaluate(b, gt, dets)
}

// benchEvaluate times EvaluateCOCO and also reports the process CPU time per
// call (cpu-ms/op, all threads), which a busy shared machine disturbs less
// than wall time.
func benchEvaluate(b *testing.B, gt *GroundTruth, dets []Detection) {
	p := DefaultCOCOParams()
	if _, err := EvaluateCOCO(gt, dets, p); err != nil { // warm-up
		b.Fatal(err)
	}
	c0 := processCPU()
	n := 0
	for b.Loop() {
		if _, err := EvaluateCOCO(gt, dets, p); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(processCPU()-c0)/1e6/float64(n), "cpu-ms/op")
}

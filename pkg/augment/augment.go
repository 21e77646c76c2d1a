package augment

import (
	"errors"
	"fmt"
	"math"

	"yolodistill/pkg/box"
	"yolodistill/pkg/dataset"
)

// fimage is an RGB image of float32 samples on the 0..255 scale, row-major,
// interleaved: pix[(y*w+x)*3+c]. Colour distortion works on it.
type fimage struct {
	w, h int
	pix  []float32 // len 3*w*h
}

// Colour distortion operations, in the index order of Record.ColorOn and
// ColorDelta.
const (
	ColorBrightness = 0
	ColorContrast   = 1
	ColorSaturation = 2
	ColorHue        = 3
)

// Config holds the fixed (non-random) settings of the YOLOv3 training
// augmentation, PaddleDetection release/0.3 yolov3_reader.yml defaults via
// DefaultConfig. Probabilities here are probabilities of APPLYING an
// operation (PaddleDetection's ColorDistort and RandomExpand take the
// probability of skipping; the defaults are 0.5 either way).
type Config struct {
	Mixup                 bool    // MixupImage on (the loader also limits it to the first MixupEpochs)
	MixupAlpha, MixupBeta float64 // Beta distribution of the mixup factor (1.5, 1.5)

	Color      bool          // ColorDistort on
	ColorRange [4][2]float64 // [op] = {lower, upper} of the delta, ops indexed ColorBrightness..ColorHue
	ColorProb  [4]float64    // [op] = probability of applying op

	Expand      bool       // RandomExpand on
	ExpandRatio float64    // maximum canvas / image side ratio (4)
	ExpandProb  float64    // probability of expanding (0.5)
	ExpandFill  [3]float32 // canvas colour, RGB on 0..255 (the ImageNet mean)

	Crop           bool       // RandomCrop on
	CropAspect     [2]float64 // aspect ratio range (0.5, 2)
	CropThresholds []float64  // IoU thresholds (0, .1, .3, .5, .7, .9)
	CropScaling    [2]float64 // side scale range (0.3, 1)
	CropAttempts   int        // attempts per threshold (50)
	CropAllowNone  bool       // "no crop" is one of the shuffled choices (true)
	CropCoverAll   bool       // every box must reach the threshold (false)

	Flip     bool    // RandomFlipImage on
	FlipProb float64 // probability of flipping (0.5)

	Sizes        []int // input sizes RandomShape draws from, one per batch (320..608 step 32)
	RandomInterp bool  // draw the interpolation from RandomInterps; else InterpNearest as RandomShape does

	Mean, Std [3]float64 // NormalizeImage on 0..1 pixels, RGB
	MaxBoxes  int        // PadBox: keep at most this many targets (50); 0 keeps all
}

// DefaultConfig returns PaddleDetection's YOLOv3 training settings.
func DefaultConfig() Config {
	sizes := make([]int, 0, 10)
	for s := 320; s <= 608; s += 32 {
		sizes = append(sizes, s)
	}
	return Config{
		Mixup: true, MixupAlpha: 1.5, MixupBeta: 1.5,
		Color: true,
		ColorRange: [4][2]float64{
			ColorBrightness: {0.5, 1.5}, ColorContrast: {0.5, 1.5},
			ColorSaturation: {0.5, 1.5}, ColorHue: {-18, 18},
		},
		ColorProb: [4]float64{0.5, 0.5, 0.5, 0.5},
		Expand:    true, ExpandRatio: 4, ExpandProb: 0.5,
		// yolov3_reader.yml asks for 123.675, 116.28, 103.53; RandomExpand
		// casts the fill to uint8, so the canvas really gets these values.
		ExpandFill: [3]float32{123, 116, 103},
		Crop:       true, CropAspect: [2]float64{0.5, 2},
		CropThresholds: []float64{0, 0.1, 0.3, 0.5, 0.7, 0.9},
		CropScaling:    [2]float64{0.3, 1}, CropAttempts: 50, CropAllowNone: true,
		Flip: true, FlipProb: 0.5,
		Sizes: sizes, RandomInterp: true,
		Mean:     [3]float64{0.485, 0.456, 0.406},
		Std:      [3]float64{0.229, 0.224, 0.225},
		MaxBoxes: 50,
	}
}

// Record is every random choice that made one augmented view of one image:
// applying it (Config.Apply) to the same image (and mixup partner)
// rebuilds the view bit for bit. It is what a soft-target file stores next to
// the teacher's outputs. Coordinates are integer pixels.
type Record struct {
	Sample int64 // index of the image in the dataset (Dataset.Samples order)

	Partner   int64   // mixup partner's index; -1: no mixup
	MixFactor float64 // weight of Sample's pixels and scores (partner: 1-MixFactor); <= 0: the partner alone

	ColorOrder [4]uint8   // order the colour operations run in (a permutation of 0..3)
	ColorOn    [4]bool    // [op]: applied
	ColorDelta [4]float64 // [op]: its delta (0 when not applied)

	Expand                             bool  // canvas expansion applied
	ExpandX, ExpandY, ExpandW, ExpandH int32 // image's top-left on the canvas, canvas size

	Crop                       bool  // crop applied
	CropX, CropY, CropW, CropH int32 // crop rectangle on the (expanded) image

	Flip bool // horizontal flip after the crop

	Size   int32  // square input size in pixels
	Interp Interp // resize interpolation
}

// Geometry is what drawing a view needs to know about an image: its size in
// pixels and its targets.
type Geometry struct {
	W, H    int
	Targets []dataset.Target
}

// DrawShape draws a batch's input size and interpolation as RandomShape does.
func (c *Config) DrawShape(r *dataset.RNG) (size int, interp Interp) {
	size = 608
	if len(c.Sizes) > 0 {
		size = c.Sizes[r.Intn(len(c.Sizes))]
	} else {
		r.Uint64()
	}
	interp = InterpNearest
	if c.RandomInterp {
		interp = RandomInterps[r.Intn(len(RandomInterps))]
	} else {
		r.Uint64()
	}
	return size, interp
}

// EvalRecord is the record of an un-augmented view: the image resized to
// size x size with interp (PaddleDetection's eval reader: ResizeImage, cubic).
func EvalRecord(sample int64, size int, interp Interp) Record {
	return Record{Sample: sample, Partner: -1, MixFactor: 1, ColorOrder: [4]uint8{0, 1, 2, 3},
		Size: int32(size), Interp: interp}
}

// Draw draws the random choices of one training view, in PaddleDetection's
// order: MixupImage, ColorDistort, RandomExpand, RandomCrop, RandomFlipImage.
// partner is the mixup partner (nil: no mixup) with dataset index partnerIdx.
// size and interp are the batch's (DrawShape). Only geometry is needed, not
// pixels. The draws consume r in a fixed order, so the same RNG state gives the
// same record.
func (c *Config) Draw(r *dataset.RNG, sample int64, img Geometry, partnerIdx int64, partner *Geometry, size int, interp Interp) Record {
	rec := EvalRecord(sample, size, interp)
	g := img
	if c.Mixup && partner != nil {
		f := r.Beta(c.MixupAlpha, c.MixupBeta)
		f = math.Max(0, math.Min(1, f))
		if f < 1 {
			rec.Partner, rec.MixFactor = partnerIdx, f
			g = mixupGeometry(img, *partner, f)
		}
	}
	if c.Color {
		perm := r.Perm(4)
		for i, op := range perm {
			rec.ColorOrder[i] = uint8(op)
			if r.Float64() < c.ColorProb[op] {
				rec.ColorOn[op] = true
				rec.ColorDelta[op] = r.Uniform(c.ColorRange[op][0], c.ColorRange[op][1])
			}
		}
	}
	if c.Expand && r.Float64() < c.ExpandProb {
		ratio := r.Uniform(1, c.ExpandRatio)
		h := int(float64(g.H) * ratio)
		w := int(float64(g.W) * ratio)
		if h > g.H && w > g.W {
			y := r.Intn(h - g.H)
			x := r.Intn(w - g.W)
			rec.Expand = true
			rec.ExpandX, rec.ExpandY, rec.ExpandW, rec.ExpandH = int32(x), int32(y), int32(w), int32(h)
			g = expandGeometry(g, x, y, w, h)
		}
	}
	if c.Crop && len(g.Targets) > 0 {
		if x, y, w, h, ok := c.drawCrop(r, g); ok {
			rec.Crop = true
			rec.CropX, rec.CropY, rec.CropW, rec.CropH = int32(x), int32(y), int32(w), int32(h)
			g = cropGeometry(g, x, y, w, h)
		}
	}
	if c.Flip && r.Float64() < c.FlipProb {
		rec.Flip = true
	}
	return rec
}

// drawCrop is RandomCrop's search: thresholds (plus "no crop") in random
// order; per threshold up to CropAttempts random rectangles; the first whose
// best IoU with a box reaches the threshold and which keeps at least one box
// centre wins.
func (c *Config) drawCrop(r *dataset.RNG, g Geometry) (x, y, w, h int, ok bool) {
	n := len(c.CropThresholds)
	choices := n
	if c.CropAllowNone {
		choices++
	}
	for _, i := range r.Perm(choices) {
		if i == n {
			return 0, 0, 0, 0, false // "no crop"
		}
		thresh := c.CropThresholds[i]
		for a := 0; a < c.CropAttempts; a++ {
			scale := r.Uniform(c.CropScaling[0], c.CropScaling[1])
			ar := r.Uniform(math.Max(c.CropAspect[0], scale*scale), math.Min(c.CropAspect[1], 1/(scale*scale)))
			sq := math.Sqrt(ar)
			ch := int(float64(g.H) * (scale / sq))
			cw := int(float64(g.W) * (scale * sq))
			cy := r.Intn(g.H - ch)
			cx := r.Intn(g.W - cw)
			if ch <= 0 || cw <= 0 {
				continue
			}
			cb := box.Box{X0: float64(cx), Y0: float64(cy), X1: float64(cx + cw), Y1: float64(cy + ch)}
			maxIoU, minIoU := 0.0, math.Inf(1)
			for _, t := range g.Targets {
				v := box.IoU(t.Box, cb)
				maxIoU = math.Max(maxIoU, v)
				minIoU = math.Min(minIoU, v)
			}
			if maxIoU < thresh || (c.CropCoverAll && minIoU < thresh) {
				continue
			}
			if len(cropGeometry(g, cx, cy, cw, ch).Targets) > 0 {
				return cx, cy, cw, ch, true
			}
		}
	}
	return 0, 0, 0, 0, false
}

// mixupGeometry is MixupImage on sizes and targets: the canvas is the larger
// of the two sizes, targets are concatenated with scores f and 1-f; f <= 0
// gives the partner alone.
func mixupGeometry(a, b Geometry, f float64) Geometry {
	if f <= 0 {
		return b
	}
	g := Geometry{W: max(a.W, b.W), H: max(a.H, b.H)}
	g.Targets = make([]dataset.Target, 0, len(a.Targets)+len(b.Targets))
	for _, t := range a.Targets {
		t.Score *= f
		g.Targets = append(g.Targets, t)
	}
	for _, t := range b.Targets {
		t.Score *= 1 - f
		g.Targets = append(g.Targets, t)
	}
	return g
}

// expandGeometry places the image at (x, y) on a w x h canvas.
func expandGeometry(g Geometry, x, y, w, h int) Geometry {
	out := Geometry{W: w, H: h, Targets: make([]dataset.Target, len(g.Targets))}
	dx, dy := float64(x), float64(y)
	for i, t := range g.Targets {
		t.Box = box.Box{X0: t.Box.X0 + dx, Y0: t.Box.Y0 + dy, X1: t.Box.X1 + dx, Y1: t.Box.Y1 + dy}
		out.Targets[i] = t
	}
	return out
}

// cropGeometry keeps the targets whose centre lies in the crop [x, x+w) x
// [y, y+h) and whose clipped box is not empty, clipped and shifted to the crop.
func cropGeometry(g Geometry, x, y, w, h int) Geometry {
	out := Geometry{W: w, H: h}
	cb := box.Box{X0: float64(x), Y0: float64(y), X1: float64(x + w), Y1: float64(y + h)}
	for _, t := range g.Targets {
		cx, cy := t.Box.Center()
		if !(cb.X0 <= cx && cx < cb.X1 && cb.Y0 <= cy && cy < cb.Y1) {
			continue
		}
		b := box.Intersect(t.Box, cb)
		if !(b.X0 < b.X1 && b.Y0 < b.Y1) {
			continue
		}
		t.Box = box.Box{X0: b.X0 - cb.X0, Y0: b.Y0 - cb.Y0, X1: b.X1 - cb.X0, Y1: b.Y1 - cb.Y0}
		out.Targets = append(out.Targets, t)
	}
	return out
}

// flipGeometry mirrors the targets horizontally: x -> W - x (half-open boxes
// mirror exactly; PaddleDetection's W-x-1 is the inclusive-pixel form).
func flipGeometry(g Geometry) Geometry {
	out := Geometry{W: g.W, H: g.H, Targets: make([]dataset.Target, len(g.Targets))}
	w := float64(g.W)
	for i, t := range g.Targets {
		t.Box.X0, t.Box.X1 = w-t.Box.X1, w-t.Box.X0
		out.Targets[i] = t
	}
	return out
}

// ErrRecordMismatch is returned (wrapped) when a record does not fit the image
// it is applied to.
var ErrRecordMismatch = errors.New("view record does not fit the image")

// Geometry replays the record's geometric operations on targets only. It
// returns the targets in input pixels (the view is Size x Size), clipped to
// the input and without empty boxes, truncated to MaxBoxes; the record is
// checked against the image sizes.
func (c *Config) Geometry(rec *Record, img Geometry, partner *Geometry) ([]dataset.Target, error) {
	g, err := c.geometry(rec, img, partner)
	if err != nil {
		return nil, err
	}
	return c.finalTargets(rec, g), nil
}

// geometry returns the targets and size just before the final resize.
func (c *Config) geometry(rec *Record, img Geometry, partner *Geometry) (Geometry, error) {
	g := img
	if rec.Partner >= 0 {
		if partner == nil {
			return g, fmt.Errorf("%w: record %d wants mixup partner %d, none given", ErrRecordMismatch, rec.Sample, rec.Partner)
		}
		g = mixupGeometry(img, *partner, rec.MixFactor)
	}
	if rec.Expand {
		if int(rec.ExpandW) < g.W || int(rec.ExpandH) < g.H || rec.ExpandX < 0 || rec.ExpandY < 0 ||
			int(rec.ExpandX)+g.W > int(rec.ExpandW) || int(rec.ExpandY)+g.H > int(rec.ExpandH) {
			return g, fmt.Errorf("%w: record %d expands a %dx%d image to %dx%d at (%d,%d)",
				ErrRecordMismatch, rec.Sample, g.W, g.H, rec.ExpandW, rec.ExpandH, rec.ExpandX, rec.ExpandY)
		}
		g = expandGeometry(g, int(rec.ExpandX), int(rec.ExpandY), int(rec.ExpandW), int(rec.ExpandH))
	}
	if rec.Crop {
		if rec.CropX < 0 || rec.CropY < 0 || rec.CropW <= 0 || rec.CropH <= 0 ||
			int(rec.CropX+rec.CropW) > g.W || int(rec.CropY+rec.CropH) > g.H {
			return g, fmt.Errorf("%w: record %d crops %dx%d at (%d,%d) from %dx%d",
				ErrRecordMismatch, rec.Sample, rec.CropW, rec.CropH, rec.CropX, rec.CropY, g.W, g.H)
		}
		g = cropGeometry(g, int(rec.CropX), int(rec.CropY), int(rec.CropW), int(rec.CropH))
	}
	if rec.Flip {
		g = flipGeometry(g)
	}
	if rec.Size <= 0 || rec.Size > 1<<14 {
		return g, fmt.Errorf("%w: record %d has input size %d", ErrRecordMismatch, rec.Sample, rec.Size)
	}
	if rec.Interp >= numInterps {
		return g, fmt.Errorf("%w: record %d has interpolation %d", ErrRecordMismatch, rec.Sample, rec.Interp)
	}
	return g, nil
}

// finalTargets scales g's targets to the Size x Size input (NormalizeBox, then
// input pixels), clips them, drops empty ones and applies MaxBoxes.
func (c *Config) finalTargets(rec *Record, g Geometry) []dataset.Target {
	s := float64(rec.Size)
	w, h := float64(g.W), float64(g.H)
	out := make([]dataset.Target, 0, len(g.Targets))
	for _, t := range g.Targets {
		b := box.Box{X0: t.Box.X0 / w * s, Y0: t.Box.Y0 / h * s, X1: t.Box.X1 / w * s, Y1: t.Box.Y1 / h * s}.Clip(s, s)
		if b.Empty() {
			continue
		}
		t.Box = b
		out = append(out, t)
		if c.MaxBoxes > 0 && len(out) == c.MaxBoxes {
			break
		}
	}
	return out
}

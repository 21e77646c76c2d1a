package augment

import (
	"fmt"
	"math"
	"sync"
	"yolodistill/pkg/dataset"
)

// View is one augmented network input and its targets.
type View struct {
	Size    int              // the input is Size x Size
	Image   []float32        // [3, Size, Size], channel-major RGB, normalised: (v/255 - Mean) / Std
	Targets []dataset.Target // boxes in input pixels, half-open xyxy; Score = mixup weight
}

// Apply rebuilds the view a record describes: MixupImage, ColorDistort,
// RandomExpand, RandomCrop, RandomFlipImage, RandomShape's resize to
// Size x Size with the record's interpolation, NormalizeImage and Permute
// (HWC -> CHW). img and targets are the sample's decoded image and boxes;
// partner and partnerTargets the mixup partner's (nil when the record has
// none). Inputs are not modified.
//
// dst, when it has room for 3*Size*Size values, receives the image (e.g. a
// slice of a batch tensor); otherwise a new slice is allocated.
//
// The result depends only on the inputs and the record: every float32
// product is rounded before it is added (no fused multiply-add), loops run in
// a fixed order, and nothing is shared between calls, so the same record on
// the same image gives identical bits in any process or goroutine.
//
// Deviation from PaddleDetection, on purpose: after colour distortion pixels
// stay float32 to the end (PaddleDetection casts to uint8 inside
// RandomExpand, which wraps values pushed outside 0..255).
func (c *Config) Apply(rec *Record, img *dataset.Image, targets []dataset.Target, partner *dataset.Image, partnerTargets []dataset.Target, dst []float32) (View, error) {
	if img == nil || img.W <= 0 || img.H <= 0 || len(img.Pix) != 3*img.W*img.H {
		return View{}, fmt.Errorf("%w: record %d: bad image", ErrRecordMismatch, rec.Sample)
	}
	ga := Geometry{W: img.W, H: img.H, Targets: targets}
	var gb *Geometry
	if partner != nil {
		if partner.W <= 0 || partner.H <= 0 || len(partner.Pix) != 3*partner.W*partner.H {
			return View{}, fmt.Errorf("%w: record %d: bad partner image", ErrRecordMismatch, rec.Sample)
		}
		gb = &Geometry{W: partner.W, H: partner.H, Targets: partnerTargets}
	}
	g, err := c.geometry(rec, ga, gb)
	if err != nil {
		return View{}, err
	}
	size := int(rec.Size)

	// Mixup gives integer pixels (PaddleDetection's uint8 cast); colour
	// distortion works on a pooled float copy. The caller's images are read-only.
	src8 := img
	if rec.Partner >= 0 {
		src8 = mixupPixels(img, partner, rec.MixFactor)
	}
	var srcF *fimage
	if anyColor(rec) {
		buf := getF32(3 * src8.W * src8.H)
		defer putF32(buf)
		srcF = &fimage{w: src8.W, h: src8.H, pix: *buf}
		for i, v := range src8.Pix {
			srcF.pix[i] = float32(v)
		}
		colorDistort(srcF, rec)
	}

	// Geometry of the final resample: the region (rx, ry, rw, rh) of the
	// canvas, on which the image sits at (ex, ey).
	ex, ey, rx, ry, rw, rh := 0, 0, 0, 0, src8.W, src8.H
	if rec.Expand {
		ex, ey, rw, rh = int(rec.ExpandX), int(rec.ExpandY), int(rec.ExpandW), int(rec.ExpandH)
	}
	if rec.Crop {
		rx, ry, rw, rh = int(rec.CropX), int(rec.CropY), int(rec.CropW), int(rec.CropH)
	}
	n := 3 * size * size
	if cap(dst) >= n {
		dst = dst[:n]
	} else {
		dst = make([]float32, n)
	}
	rs := resampler{src8: src8, srcF: srcF, ex: ex, ey: ey, rx: rx, ry: ry, rw: rw, rh: rh, flip: rec.Flip,
		size: size, interp: rec.Interp, fill: c.ExpandFill, mean: c.Mean, std: c.Std}
	rs.run(dst)
	return View{Size: size, Image: dst, Targets: c.finalTargets(rec, g)}, nil
}

// f32Pool recycles the large float buffers of Apply (colour image, resample
// rows); a buffer's old content is never read.
var f32Pool sync.Pool

// getF32 returns a buffer of length n (contents undefined).
func getF32(n int) *[]float32 {
	if p, ok := f32Pool.Get().(*[]float32); ok && cap(*p) >= n {
		*p = (*p)[:n]
		return p
	}
	b := make([]float32, n)
	return &b
}

func putF32(p *[]float32) { f32Pool.Put(p) }

func anyColor(rec *Record) bool {
	return rec.ColorOn[0] || rec.ColorOn[1] || rec.ColorOn[2] || rec.ColorOn[3]
}

// mixupPixels is MixupImage's pixel part: a max(W) x max(H) image, a*f in a's
// area plus b*(1-f) in b's (float32), zero elsewhere, truncated to integers as
// PaddleDetection's uint8 cast does. f <= 0 returns b itself.
func mixupPixels(a, b *dataset.Image, f float64) *dataset.Image {
	if f <= 0 {
		return b
	}
	w, h := max(a.W, b.W), max(a.H, b.H)
	out := dataset.NewImage(w, h)
	fa, fb := float32(f), float32(1-f)
	for y := 0; y < h; y++ {
		d := out.Pix[y*w*3 : (y+1)*w*3]
		var ra, rb []uint8
		if y < a.H {
			ra = a.Pix[y*a.W*3 : (y+1)*a.W*3]
		}
		if y < b.H {
			rb = b.Pix[y*b.W*3 : (y+1)*b.W*3]
		}
		for i := range d {
			var v float32
			if i < len(ra) {
				v = float32(float32(ra[i]) * fa)
			}
			if i < len(rb) {
				v = v + float32(float32(rb[i])*fb)
			}
			if v > 255 {
				v = 255
			}
			d[i] = uint8(v) // truncation toward zero
		}
	}
	return out
}

// YIQ matrices of PaddleDetection's ColorDistort hue rotation.
var (
	rgbToYIQ = [3][3]float64{{0.299, 0.587, 0.114}, {0.596, -0.274, -0.321}, {0.211, -0.523, 0.311}}
	yiqToRGB = [3][3]float64{{1.0, 0.956, 0.621}, {1.0, -0.272, -0.647}, {1.0, -1.107, 1.705}}
)

// mat3 multiplies 3x3 matrices, each product rounded before the sum.
func mat3(a, b [3][3]float64) [3][3]float64 {
	var m [3][3]float64
	for i := 0; i < 3; i++ {
		for j := 0; j < 3; j++ {
			m[i][j] = float64(float64(a[i][0]*b[0][j])+float64(a[i][1]*b[1][j])) + float64(a[i][2]*b[2][j])
		}
	}
	return m
}

// hueMatrix returns T with out_c = sum_k in_k * T[k][c] (PaddleDetection's
// np.dot(img, t) with t = (ityiq . bt . tyiq)^T). The rotation angle is
// delta*pi radians, as in PaddleDetection (its hue "degrees" are used as
// multiples of pi).
func hueMatrix(delta float64) [3][3]float64 {
	u := math.Cos(delta * math.Pi)
	w := math.Sin(delta * math.Pi)
	bt := [3][3]float64{{1, 0, 0}, {0, u, -w}, {0, w, u}}
	m := mat3(mat3(yiqToRGB, bt), rgbToYIQ)
	var t [3][3]float64
	for i := 0; i < 3; i++ {
		for j := 0; j < 3; j++ {
			t[i][j] = m[j][i]
		}
	}
	return t
}

// colorDistort applies the record's colour operations in place, in the
// record's order (PaddleDetection ColorDistort with random_apply):
// brightness v+d; contrast v*d; saturation v*d + gray*(1-d) with
// gray = .299r+.587g+.114b; hue a YIQ rotation. No clipping.
func colorDistort(im *fimage, rec *Record) {
	p := im.pix
	for _, op := range rec.ColorOrder {
		if op > 3 || !rec.ColorOn[op] {
			continue
		}
		d := rec.ColorDelta[op]
		switch op {
		case ColorBrightness:
			d32 := float32(d)
			for i := range p {
				p[i] = p[i] + d32
			}
		case ColorContrast:
			d32 := float32(d)
			for i := range p {
				p[i] = float32(p[i] * d32)
			}
		case ColorSaturation:
			d32 := float32(d)
			k := float32(1 - d)
			const wr, wg, wb = float32(0.299), float32(0.587), float32(0.114)
			for i := 0; i < len(p); i += 3 {
				r, g, b := p[i], p[i+1], p[i+2]
				gray := float32(float32(r*wr)+float32(g*wg)) + float32(b*wb)
				gray = float32(gray * k)
				p[i] = float32(r*d32) + gray
				p[i+1] = float32(g*d32) + gray
				p[i+2] = float32(b*d32) + gray
			}
		case ColorHue:
			t := hueMatrix(d)
			for i := 0; i < len(p); i += 3 {
				r, g, b := float64(p[i]), float64(p[i+1]), float64(p[i+2])
				for ch := 0; ch < 3; ch++ {
					p[i+ch] = float32(float64(float64(r*t[0][ch])+float64(g*t[1][ch])) + float64(b*t[2][ch]))
				}
			}
		}
	}
}

// resampler resizes the region (rx, ry, rw, rh) of a virtual canvas to
// size x size with interp, mirrored horizontally when flip, and writes it
// normalised and channel-major. On the canvas the image (srcF when set, else
// src8) sits at (ex, ey); canvas pixels outside it have colour fill. The
// canvas is never materialised: each needed region row is built, resampled
// horizontally, then rows are blended vertically.
type resampler struct {
	src8                   *dataset.Image
	srcF                   *fimage
	ex, ey, rx, ry, rw, rh int
	flip                   bool
	size                   int
	interp                 Interp
	fill                   [3]float32
	mean, std              [3]float64
}

// run writes the result into dst: [3, size, size].
func (r *resampler) run(dst []float32) {
	size := r.size
	xt := makeTaps(r.rw, size, r.interp)
	yt := makeTaps(r.rh, size, r.interp)
	rowLen := 3 * size
	sw, sh := r.src8.W, r.src8.H

	// Which region rows the vertical taps read, and where each goes in tmp.
	slot := make([]int32, r.rh)
	for i := range slot {
		slot[i] = -1
	}
	for _, i := range yt.idx {
		slot[i] = 0
	}
	nrows := 0
	for i, s := range slot {
		if s == 0 {
			slot[i] = int32(nrows)
			nrows++
		}
	}
	tmpBuf := getF32(nrows * rowLen)
	defer putF32(tmpBuf)
	rowBuf := getF32(3 * r.rw)
	defer putF32(rowBuf)
	tmp, row := *tmpBuf, *rowBuf

	// Region x in [ix0, ix1) (before flipping) lies on the image, at image
	// x = rx + x - ex.
	ix0 := max(0, r.ex-r.rx)
	ix1 := min(r.rw, r.ex+sw-r.rx)
	fillRow := -1 // tmp slot holding the resampled all-fill row, once computed
	for ryi := 0; ryi < r.rh; ryi++ {
		if slot[ryi] < 0 {
			continue
		}
		out := tmp[int(slot[ryi])*rowLen : int(slot[ryi]+1)*rowLen]
		iy := r.ry + ryi - r.ey
		if iy < 0 || iy >= sh || ix0 >= ix1 {
			if fillRow >= 0 {
				copy(out, tmp[fillRow*rowLen:(fillRow+1)*rowLen])
				continue
			}
			for x := 0; x < r.rw; x++ {
				row[3*x], row[3*x+1], row[3*x+2] = r.fill[0], r.fill[1], r.fill[2]
			}
			xt.hresample(out, row)
			fillRow = int(slot[ryi])
			continue
		}
		// Build the region row (flipped when asked), fill outside the image:
		// region x in [ix0, ix1) shows image x = rx + x - ex; after a flip it
		// lands at rw-1-x.
		d0, d1 := ix0, ix1
		if r.flip {
			d0, d1 = r.rw-ix1, r.rw-ix0
		}
		for x := 0; x < d0; x++ {
			row[3*x], row[3*x+1], row[3*x+2] = r.fill[0], r.fill[1], r.fill[2]
		}
		for x := d1; x < r.rw; x++ {
			row[3*x], row[3*x+1], row[3*x+2] = r.fill[0], r.fill[1], r.fill[2]
		}
		seg := row[3*d0 : 3*d1]
		o := (iy*sw + r.rx + ix0 - r.ex) * 3 // image offset of region x = ix0
		n := len(seg)
		switch {
		case r.srcF != nil && !r.flip:
			copy(seg, r.srcF.pix[o:o+n])
		case r.srcF != nil:
			p := r.srcF.pix[o : o+n]
			for i := 0; i < n; i += 3 {
				j := n - 3 - i
				seg[j], seg[j+1], seg[j+2] = p[i], p[i+1], p[i+2]
			}
		case !r.flip:
			p := r.src8.Pix[o : o+n]
			for i, v := range p {
				seg[i] = float32(v)
			}
		default:
			p := r.src8.Pix[o : o+n]
			for i := 0; i < n; i += 3 {
				j := n - 3 - i
				seg[j], seg[j+1], seg[j+2] = float32(p[i]), float32(p[i+1]), float32(p[i+2])
			}
		}
		xt.hresample(out, row)
	}

	// Vertical pass, then NormalizeImage and Permute.
	acc := make([]float32, rowLen)
	plane := size * size
	for oy := 0; oy < size; oy++ {
		for i := range acc {
			acc[i] = 0
		}
		base := oy * yt.k
		for j := 0; j < yt.k; j++ {
			w := yt.w[base+j]
			if w == 0 {
				continue
			}
			s := int(slot[yt.idx[base+j]])
			axpy(acc, w, tmp[s*rowLen:(s+1)*rowLen])
		}
		for c := 0; c < 3; c++ {
			m, sd := r.mean[c], r.std[c]
			d := dst[c*plane+oy*size : c*plane+(oy+1)*size]
			for ox := range d {
				v := acc[3*ox+c] / 255
				v = float32(float64(v) - m)
				d[ox] = float32(float64(v) / sd)
			}
		}
	}
}

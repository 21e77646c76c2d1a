package augment

import (
	"fmt"
	"math"
)

// Interp is an interpolation mode for resizing. The numbering is OpenCV's
// (cv2.INTER_*), which PaddleDetection's configs use.
type Interp uint8

// Interpolation modes. The sampling follows OpenCV's cv2.resize conventions
// (pixel centres at +0.5 for linear, cubic and Lanczos; floor mapping for
// nearest; exact area coverage for area when shrinking), computed here in
// float32 with our own code; results are close to, not bit-equal with, OpenCV.
const (
	InterpNearest  Interp = 0 // source pixel floor(dst*scale)
	InterpLinear   Interp = 1 // bilinear, 2 taps per axis
	InterpCubic    Interp = 2 // bicubic, A = -0.75, 4 taps per axis
	InterpArea     Interp = 3 // area averaging when shrinking; OpenCV's area-upscale weights otherwise
	InterpLanczos4 Interp = 4 // Lanczos, 8 taps per axis
	numInterps            = 5
)

// RandomInterps is the list PaddleDetection's RandomShape draws from, in its order.
var RandomInterps = []Interp{InterpNearest, InterpLinear, InterpArea, InterpCubic, InterpLanczos4}

// String returns the mode's name.
func (m Interp) String() string {
	switch m {
	case InterpNearest:
		return "nearest"
	case InterpLinear:
		return "linear"
	case InterpCubic:
		return "cubic"
	case InterpArea:
		return "area"
	case InterpLanczos4:
		return "lanczos4"
	}
	return fmt.Sprintf("interp(%d)", uint8(m))
}

// ParseInterp maps a name (nearest, linear, cubic, area, lanczos4) to its mode.
func ParseInterp(s string) (Interp, error) {
	for m := Interp(0); m < numInterps; m++ {
		if m.String() == s {
			return m, nil
		}
	}
	return 0, fmt.Errorf("unknown interpolation %q (want nearest, linear, cubic, area or lanczos4)", s)
}

// taps is a 1-D resampling table: output index o reads source indices
// idx[o*k : o*k+k] with weights w[o*k : o*k+k]. Indices are clamped into
// [0, src) (border replicate); unused taps have weight 0.
type taps struct {
	k   int
	idx []int32
	w   []float32
}

// makeTaps builds the table for resizing an axis of length src to dst.
// It panics if src or dst is not positive (callers validate sizes).
func makeTaps(src, dst int, m Interp) taps {
	if src <= 0 || dst <= 0 {
		panic(fmt.Sprintf("dataset: makeTaps(%d, %d)", src, dst))
	}
	scale := float64(src) / float64(dst)
	clampi := func(i int) int32 {
		if i < 0 {
			return 0
		}
		if i >= src {
			return int32(src - 1)
		}
		return int32(i)
	}
	var t taps
	switch m {
	case InterpNearest:
		t.k = 1
		t.idx = make([]int32, dst)
		t.w = make([]float32, dst)
		for o := 0; o < dst; o++ {
			t.idx[o] = clampi(int(math.Floor(float64(o) * scale)))
			t.w[o] = 1
		}
	case InterpLinear:
		t.k = 2
		t.idx = make([]int32, 2*dst)
		t.w = make([]float32, 2*dst)
		for o := 0; o < dst; o++ {
			fx := float64(float64(float64(o)+0.5)*scale) - 0.5
			sx := int(math.Floor(fx))
			f := fx - float64(sx)
			if sx < 0 {
				sx, f = 0, 0
			}
			if sx >= src-1 {
				sx, f = src-1, 0
			}
			t.idx[2*o], t.idx[2*o+1] = clampi(sx), clampi(sx+1)
			t.w[2*o], t.w[2*o+1] = float32(1-f), float32(f)
		}
	case InterpCubic:
		const a = -0.75
		t.k = 4
		t.idx = make([]int32, 4*dst)
		t.w = make([]float32, 4*dst)
		for o := 0; o < dst; o++ {
			fx := float64(float64(float64(o)+0.5)*scale) - 0.5
			sx := int(math.Floor(fx))
			x := fx - float64(sx)
			x1 := x + 1
			w0 := float64(float64(float64(float64(float64(a*x1)-5*a)*x1)+8*a)*x1) - 4*a
			w1 := float64(float64(float64(float64((a+2)*x)-(a+3))*x)*x) + 1
			y := 1 - x
			w2 := float64(float64(float64(float64((a+2)*y)-(a+3))*y)*y) + 1
			w3 := 1 - w0 - w1 - w2
			for j, w := range [4]float64{w0, w1, w2, w3} {
				t.idx[4*o+j] = clampi(sx - 1 + j)
				t.w[4*o+j] = float32(w)
			}
		}
	case InterpLanczos4:
		t.k = 8
		t.idx = make([]int32, 8*dst)
		t.w = make([]float32, 8*dst)
		for o := 0; o < dst; o++ {
			fx := float64(float64(float64(o)+0.5)*scale) - 0.5
			sx := int(math.Floor(fx))
			x := fx - float64(sx)
			var ws [8]float64
			sum := 0.0
			for j := 0; j < 8; j++ {
				d := x + 3 - float64(j) // distance from tap sx-3+j
				if math.Abs(d) < 1e-9 {
					ws[j] = 1
				} else {
					pd := math.Pi * d
					ws[j] = float64(math.Sin(pd)*math.Sin(pd/4)) / float64(pd*pd/4)
				}
				sum += ws[j]
			}
			for j := 0; j < 8; j++ {
				t.idx[8*o+j] = clampi(sx - 3 + j)
				t.w[8*o+j] = float32(ws[j] / sum)
			}
		}
	case InterpArea:
		if scale <= 1 {
			// OpenCV's INTER_AREA when enlarging: nearest with a linear
			// transition over the fractional part of each source cell.
			inv := 1 / scale
			t.k = 2
			t.idx = make([]int32, 2*dst)
			t.w = make([]float32, 2*dst)
			for o := 0; o < dst; o++ {
				sx := int(math.Floor(float64(o) * scale))
				f := float64(o+1) - float64(float64(sx+1)*inv)
				if f <= 0 {
					f = 0
				} else {
					f -= math.Floor(f)
				}
				if sx >= src-1 {
					sx, f = src-1, 0
				}
				t.idx[2*o], t.idx[2*o+1] = clampi(sx), clampi(sx+1)
				t.w[2*o], t.w[2*o+1] = float32(1-f), float32(f)
			}
			break
		}
		// Shrinking: each output cell averages the source cells it covers,
		// partial cells weighted by their covered fraction.
		t.k = int(math.Ceil(scale)) + 1
		t.idx = make([]int32, t.k*dst)
		t.w = make([]float32, t.k*dst)
		for o := 0; o < dst; o++ {
			f1 := float64(o) * scale
			f2 := f1 + scale
			cell := math.Min(scale, float64(src)-f1)
			s1 := int(math.Ceil(f1))
			s2 := int(math.Floor(f2))
			if s2 > src-1 {
				s2 = src - 1
			}
			if s1 > s2 {
				s1 = s2
			}
			n := 0
			add := func(i int, w float64) {
				if n < t.k {
					t.idx[o*t.k+n] = clampi(i)
					t.w[o*t.k+n] = float32(w / cell)
					n++
				}
			}
			if float64(s1)-f1 > 1e-3 {
				add(s1-1, float64(s1)-f1)
			}
			for i := s1; i < s2; i++ {
				add(i, 1)
			}
			if f2-float64(s2) > 1e-3 {
				add(s2, math.Min(math.Min(f2-float64(s2), 1), cell))
			}
			for ; n < t.k; n++ {
				t.idx[o*t.k+n] = clampi(s1)
				t.w[o*t.k+n] = 0
			}
		}
	default:
		panic(fmt.Sprintf("dataset: unknown interpolation %d", m))
	}
	return t
}

// hresample writes dst[o*3+c] = sum_j w[o,j] * src[idx[o,j]*3+c] for one RGB
// row. The sum runs over the taps in order, each product rounded to float32
// before it is added (no fused multiply-add), so results are reproducible.
// src: [srcW*3], dst: [dstW*3].
func (t *taps) hresample(dst, src []float32) {
	k := t.k
	n := len(dst) / 3
	for o := 0; o < n; o++ {
		var r, g, b float32
		base := o * k
		for j := 0; j < k; j++ {
			w := t.w[base+j]
			s := int(t.idx[base+j]) * 3
			r = r + float32(w*src[s])
			g = g + float32(w*src[s+1])
			b = b + float32(w*src[s+2])
		}
		dst[3*o], dst[3*o+1], dst[3*o+2] = r, g, b
	}
}

// axpy adds w*x to y element-wise, the product rounded to float32 first.
func axpy(y []float32, w float32, x []float32) {
	x = x[:len(y)]
	for i := range y {
		y[i] = y[i] + float32(w*x[i])
	}
}

package softtarget

import "fmt"

// Tensor is a dense row-major float32 array.
type Tensor struct {
	Shape []int
	Data  []float32 // len = product of Shape
}

func numel(shape []int) (int, bool) {
	n := 1
	for _, d := range shape {
		if d <= 0 || n > (1<<40)/d {
			return 0, false
		}
		n *= d
	}
	return n, true
}

// View is one augmented view of one image with the teacher's outputs for it.
type View struct {
	ImageID   int64
	File      string // image path as the dataset names it
	ViewIndex int    // >= 0; the k-th augmented view of the image
	Aug       []byte // the view's augmentation record, opaque here (pkg/dataset encodes it)
	InputH    int    // network input height, pixels
	InputW    int    // network input width, pixels
	// Outputs[s]: [A_s*(5+C), H_s, W_s] raw head logits of scale s (deepest
	// first), PaddleDetection channel layout (see the package doc).
	Outputs []Tensor
	// Stored[s] (sparse encodings only; nil for dense): [A_s, H_s, W_s], true
	// where the cell's x, y, w, h and class logits were stored. Outputs hold 0
	// at the other cells' box and class channels; objectness is always stored.
	Stored [][]bool
	// Features maps a name of Meta.Features to its feature map (shape as the
	// writer gave it, e.g. [C, H, W]).
	Features map[string]Tensor
	// PixelHash is the SHA-256 of the view's network input as the teacher
	// saw it (PixelHashSize bytes; how it is computed is the writer's
	// business: pkg/teacher's ViewHash), or nil: not recorded (a version 1
	// file, or a writer that gave none).
	PixelHash []byte
}

// Key names a view: image id and view index.
type Key struct {
	ImageID int64
	View    int
}

func (k Key) String() string { return fmt.Sprintf("image %d view %d", k.ImageID, k.View) }

// checkOutputShape checks a scale output against its channel count and
// returns its grid.
func checkOutputShape(t *Tensor, ch int) (h, w int, err error) {
	if len(t.Shape) != 3 {
		return 0, 0, fmt.Errorf("shape %v, want [%d, H, W]", t.Shape, ch)
	}
	if t.Shape[0] != ch {
		return 0, 0, fmt.Errorf("shape %v has %d channels, want %d (anchors*(5+classes))", t.Shape, t.Shape[0], ch)
	}
	n, ok := numel(t.Shape)
	if !ok || t.Shape[1] > 1<<20 || t.Shape[2] > 1<<20 {
		return 0, 0, fmt.Errorf("bad shape %v", t.Shape)
	}
	if len(t.Data) != n {
		return 0, 0, fmt.Errorf("shape %v needs %d values, have %d", t.Shape, n, len(t.Data))
	}
	return t.Shape[1], t.Shape[2], nil
}

// sparseEncode splits a dense output into objectness for every cell, the
// stored cell indices and their box+class logits.
//
//	out: [A*(5+C), H, W]; obj: [A*H*W]; idx: [n]; boxCls: [n, 4+C]
//
// It appends to the given slices and returns them.
func sparseEncode(out []float32, a, k, hw int, thr float64, obj []float32, idx []int32, boxCls []float32) ([]float32, []int32, []float32) {
	for ai := 0; ai < a; ai++ {
		base := ai * k * hw
		objCh := out[base+4*hw : base+5*hw]
		obj = append(obj, objCh...)
		for p, o := range objCh {
			if !(float64(o) >= thr) {
				continue
			}
			idx = append(idx, int32(ai*hw+p))
			for c := 0; c < k; c++ {
				if c == 4 {
					continue
				}
				boxCls = append(boxCls, out[base+c*hw+p])
			}
		}
	}
	return obj, idx, boxCls
}

// sparseDecode fills dst ([A*(5+C)*H*W]) and stored ([A*H*W]) from the sparse
// form (obj: [A*H*W], idx: [n], boxCls: [n, 4+C]); it checks idx (strictly
// increasing, in range) and the lengths.
func sparseDecode(dst []float32, stored []bool, a, k, hw int, obj []float32, idx []int32, boxCls []float32) error {
	if len(obj) != a*hw {
		return fmt.Errorf("sparse objectness has %d values, want %d", len(obj), a*hw)
	}
	if len(boxCls) != len(idx)*(k-1) {
		return fmt.Errorf("sparse box/class logits: %d values for %d cells, want %d", len(boxCls), len(idx), len(idx)*(k-1))
	}
	clear(dst)
	clear(stored)
	for ai := 0; ai < a; ai++ {
		copy(dst[ai*k*hw+4*hw:ai*k*hw+5*hw], obj[ai*hw:(ai+1)*hw])
	}
	prev := int64(-1)
	j := 0
	for _, c := range idx {
		if int64(c) <= prev || int(c) >= a*hw {
			return fmt.Errorf("sparse cell index %d out of order or range (previous %d, cells %d)", c, prev, a*hw)
		}
		prev = int64(c)
		stored[c] = true
		ai, p := int(c)/hw, int(c)%hw
		base := ai * k * hw
		for ch := 0; ch < k; ch++ {
			if ch == 4 {
				continue
			}
			dst[base+ch*hw+p] = boxCls[j]
			j++
		}
	}
	return nil
}

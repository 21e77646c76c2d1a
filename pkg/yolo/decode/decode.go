package decode

import (
	"fmt"
	"math"

	"yolodistill/pkg/anchor"
	"yolodistill/pkg/box"
)

// Config holds the decoding and NMS settings (PaddleDetection's yolov3
// configs: MultiClassNMS score_threshold 0.01, nms_top_k 1000, keep_top_k
// 100, nms_threshold 0.45, background_label -1, normalized false; yolo_box
// conf_thresh = score_threshold; YOLOv3Head clip_bbox true).
type Config struct {
	Anchors    []anchor.Anchor // all anchors, input pixels (w, h)
	Masks      [][]int         // Masks[s]: anchors of output s, in channel order
	Strides    []int           // Strides[s]: downsample ratio of output s
	NumClasses int

	ConfThresh   float64 // yolo_box conf_thresh on sigmoid(obj)
	ScaleXY      float64 // scale_x_y (1: YOLOv3)
	ClipBBox     bool    // clip boxes to the original image
	PaddlePixels bool    // Paddle's inclusive-corner convention (see the package doc)

	ScoreThresh float64 // multiclass_nms score_threshold (strict >)
	NMSTopK     int     // candidates per class before NMS (<= 0: all)
	KeepTopK    int     // boxes kept per image after NMS (<= 0: all)
	NMSThresh   float64 // IoU above which a lower-scored box is suppressed
}

// DefaultConfig returns PaddleDetection's YOLOv3 inference settings with the
// default anchors, masks and strides.
func DefaultConfig(numClasses int) Config {
	return Config{
		Anchors:     anchor.Defaults(),
		Masks:       anchor.DefaultMasks(),
		Strides:     anchor.DefaultStrides(),
		NumClasses:  numClasses,
		ConfThresh:  0.01,
		ScaleXY:     1,
		ClipBBox:    true,
		ScoreThresh: 0.01,
		NMSTopK:     1000,
		KeepTopK:    100,
		NMSThresh:   0.45,
	}
}

// Placement says where the original image (OrigW x OrigH pixels) lies in the
// network input: input pixel = original pixel * Scale + Pad, per axis.
type Placement struct {
	OrigW, OrigH   int
	ScaleX, ScaleY float64
	PadX, PadY     float64
}

// Stretch is the placement of an image resized to inputW x inputH without
// keeping its aspect ratio (PaddleDetection's YOLOv3 readers).
func Stretch(origW, origH, inputW, inputH int) Placement {
	return Placement{
		OrigW: origW, OrigH: origH,
		ScaleX: float64(inputW) / float64(origW), ScaleY: float64(inputH) / float64(origH),
	}
}

// Decoder decodes head outputs. It reuses its candidate buffer; it is not safe
// for concurrent use.
type Decoder struct {
	cfg  Config
	cand []box.Scored
}

// New checks cfg (anchors, masks and strides with anchor.Check) and returns
// a Decoder.
func New(cfg Config) (*Decoder, error) {
	if cfg.NumClasses < 1 {
		return nil, fmt.Errorf("decode: %d classes, need at least 1", cfg.NumClasses)
	}
	if err := anchor.Check(cfg.Anchors, cfg.Masks, cfg.Strides); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if cfg.ScaleXY == 0 {
		cfg.ScaleXY = 1
	}
	return &Decoder{cfg: cfg}, nil
}

// Detect returns the detections of batch item i after NMS, in original image
// pixels (half-open boxes), sorted by descending score.
//
//	outs[s]:   [N, A_s*(5+C), H_s, W_s], H_s*Strides[s] = inputH, W_s*Strides[s] = inputW
//	shapes[s]: the shape of outs[s]
func (d *Decoder) Detect(outs [][]float32, shapes [][4]int, i, inputH, inputW int, pl Placement) ([]box.Scored, error) {
	var err error
	d.cand, err = d.Candidates(d.cand[:0], outs, shapes, i, inputH, inputW, pl)
	if err != nil {
		return nil, err
	}
	c := d.cfg
	if c.PaddlePixels {
		return box.NMSWith(d.cand, paddleIoU, c.ScoreThresh, c.NMSThresh, c.NMSTopK, c.KeepTopK), nil
	}
	return box.NMS(d.cand, c.ScoreThresh, c.NMSThresh, c.NMSTopK, c.KeepTopK), nil
}

// paddleIoU is Paddle's JaccardOverlap with normalized=false on boxes in the
// PaddlePixels convention (inclusive corners x1, y1, X1-1, Y1-1): 0 when the
// inclusive corners do not overlap, else intersection and areas with +1, an
// inverted box having area 0.
func paddleIoU(a, b box.Box) float64 {
	ax1, ay1, bx1, by1 := a.X1-1, a.Y1-1, b.X1-1, b.Y1-1
	if b.X0 > ax1 || bx1 < a.X0 || b.Y0 > ay1 || by1 < a.Y0 {
		return 0
	}
	iw := math.Min(ax1, bx1) - math.Max(a.X0, b.X0) + 1
	ih := math.Min(ay1, by1) - math.Max(a.Y0, b.Y0) + 1
	inter := iw * ih
	area := func(x0, y0, x1, y1 float64) float64 {
		if x1 < x0 || y1 < y0 {
			return 0
		}
		return (x1 - x0 + 1) * (y1 - y0 + 1)
	}
	return inter / (area(a.X0, a.Y0, ax1, ay1) + area(b.X0, b.Y0, bx1, by1) - inter)
}

// Candidates appends to dst the boxes of batch item i before NMS: every
// (prediction, class) with conf >= ConfThresh and score > ScoreThresh, in
// Paddle's order (output, anchor, row, column, class), in original image
// pixels. Shapes as for Detect.
func (d *Decoder) Candidates(dst []box.Scored, outs [][]float32, shapes [][4]int, i, inputH, inputW int, pl Placement) ([]box.Scored, error) {
	c := d.cfg
	C := c.NumClasses
	if len(outs) != len(c.Masks) || len(shapes) != len(c.Masks) {
		return dst, fmt.Errorf("decode: %d outputs and %d shapes, the config has %d outputs", len(outs), len(shapes), len(c.Masks))
	}
	if !(pl.ScaleX > 0) || !(pl.ScaleY > 0) || pl.OrigW < 1 || pl.OrigH < 1 {
		return dst, fmt.Errorf("decode: placement %+v: scales and original size must be positive", pl)
	}
	sxy := c.ScaleXY
	bias := -0.5 * (sxy - 1)
	fw, fh := float64(pl.OrigW), float64(pl.OrigH)
	for s, sh := range shapes {
		A := len(c.Masks[s])
		H, W := sh[2], sh[3]
		if sh[1] != A*(5+C) {
			return dst, fmt.Errorf("decode: output %d has %d channels, want %d anchors x (5+%d classes)", s, sh[1], A, C)
		}
		if H*c.Strides[s] != inputH || W*c.Strides[s] != inputW {
			return dst, fmt.Errorf("decode: output %d grid %dx%d times stride %d is not the input %dx%d", s, H, W, c.Strides[s], inputH, inputW)
		}
		if i < 0 || i >= sh[0] || len(outs[s]) != sh[0]*sh[1]*H*W {
			return dst, fmt.Errorf("decode: output %d: item %d of shape %v holding %d values", s, i, sh, len(outs[s]))
		}
		hw := H * W
		per := A * (5 + C) * hw
		x := outs[s][i*per : (i+1)*per] // [A, 5+C, H, W]
		for a := 0; a < A; a++ {
			an := c.Anchors[c.Masks[s][a]]
			base := a * (5 + C) * hw
			for k := 0; k < H; k++ {
				for l := 0; l < W; l++ {
					p := k*W + l
					conf := sigmoid(float64(x[base+4*hw+p]))
					if conf < c.ConfThresh {
						continue
					}
					// centre and size in input pixels
					cx := (float64(l) + sigmoid(float64(x[base+p]))*sxy + bias) / float64(W) * float64(inputW)
					cy := (float64(k) + sigmoid(float64(x[base+hw+p]))*sxy + bias) / float64(H) * float64(inputH)
					bw := math.Exp(float64(x[base+2*hw+p])) * an.W()
					bh := math.Exp(float64(x[base+3*hw+p])) * an.H()
					b := box.Box{
						X0: (cx - bw/2 - pl.PadX) / pl.ScaleX, Y0: (cy - bh/2 - pl.PadY) / pl.ScaleY,
						X1: (cx + bw/2 - pl.PadX) / pl.ScaleX, Y1: (cy + bh/2 - pl.PadY) / pl.ScaleY,
					}
					if c.PaddlePixels {
						if c.ClipBBox {
							b.X0, b.Y0 = math.Max(b.X0, 0), math.Max(b.Y0, 0)
							b.X1, b.Y1 = math.Min(b.X1, fw-1), math.Min(b.Y1, fh-1)
						}
						b.X1++
						b.Y1++
					} else if c.ClipBBox {
						b = b.Clip(fw, fh)
					}
					for cl := 0; cl < C; cl++ {
						sc := conf * sigmoid(float64(x[base+(5+cl)*hw+p]))
						if sc > c.ScoreThresh {
							dst = append(dst, box.Scored{Box: b, Score: sc, Label: cl})
						}
					}
				}
			}
		}
	}
	return dst, nil
}

func sigmoid(v float64) float64 { return 1 / (1 + math.Exp(-v)) }

package dataset

import (
	"fmt"
	"math"
	"strings"

	"yolodistill/pkg/box"
)

// SynthShapes lists every shape the synthetic set can draw, in label order
// when all are used.
var SynthShapes = []string{"circle", "ring", "hexagon", "square", "diamond", "triangle", "cross", "star", "x"}

// DefaultSynthClasses is the class list when none is given: eight shapes in
// look-alike groups (circle/ring/hexagon/star, square/diamond, triangle,
// cross), so that shape, not colour, decides the class.
var DefaultSynthClasses = []string{"circle", "ring", "hexagon", "square", "diamond", "triangle", "cross", "star"}

// SynthOptions configure Synthesize. Zero fields take the defaults noted.
type SynthOptions struct {
	Images     int      // number of images (required, > 0)
	Size       int      // square image side in pixels (default 416, at least 64)
	Seed       uint64   // the whole output is a function of the options
	Classes    []string // shape names from SynthShapes (default DefaultSynthClasses)
	MinObjects int      // objects per image, at least (default 3)
	MaxObjects int      // objects per image, at most (default 14)
	MinObject  int      // smallest object side in pixels (default max(8, Size/40))
	MaxObject  int      // largest object side in pixels (default Size/4)
	// Names are the class names WriteSynth writes for Classes, in the same
	// order (default: the shape names): a stand-in for a dataset of other
	// classes. The pixels and boxes do not depend on them.
	Names []string
}

// Validate reports what is wrong with the options (after defaults), if anything.
func (o SynthOptions) Validate() error { return o.defaults() }

func (o *SynthOptions) defaults() error {
	if o.Images <= 0 {
		return fmt.Errorf("synth: number of images must be positive, got %d", o.Images)
	}
	if o.Size == 0 {
		o.Size = 416
	}
	if o.Size < 64 || o.Size > 8192 {
		return fmt.Errorf("synth: image size %d outside 64..8192", o.Size)
	}
	if len(o.Classes) == 0 {
		o.Classes = DefaultSynthClasses
	}
	seen := map[string]bool{}
	for _, c := range o.Classes {
		if shapeIndex(c) < 0 {
			return fmt.Errorf("synth: unknown shape %q (known: %s)", c, strings.Join(SynthShapes, ", "))
		}
		if seen[c] {
			return fmt.Errorf("synth: shape %q listed twice", c)
		}
		seen[c] = true
	}
	if len(o.Names) > 0 {
		if len(o.Names) != len(o.Classes) {
			return fmt.Errorf("synth: %d names for %d shapes (%s)", len(o.Names), len(o.Classes), strings.Join(o.Classes, ", "))
		}
		named := map[string]bool{}
		for _, n := range o.Names {
			if strings.TrimSpace(n) == "" || named[n] {
				return fmt.Errorf("synth: class name %q empty or listed twice", n)
			}
			named[n] = true
		}
	}
	if o.MinObjects == 0 {
		o.MinObjects = 3
	}
	if o.MaxObjects == 0 {
		o.MaxObjects = 14
	}
	if o.MinObjects < 0 || o.MaxObjects < o.MinObjects {
		return fmt.Errorf("synth: objects per image %d..%d is not a range", o.MinObjects, o.MaxObjects)
	}
	if o.MinObject == 0 {
		o.MinObject = max(8, o.Size/40)
	}
	if o.MaxObject == 0 {
		o.MaxObject = o.Size / 4
	}
	if o.MinObject < 4 || o.MaxObject < o.MinObject || o.MaxObject > o.Size/2 {
		return fmt.Errorf("synth: object sizes %d..%d px do not fit %d px images", o.MinObject, o.MaxObject, o.Size)
	}
	return nil
}

func shapeIndex(name string) int {
	for i, s := range SynthShapes {
		if s == name {
			return i
		}
	}
	return -1
}

// SynthSplit returns the split of synthetic image i: "val" for i%10 == 8,
// "test" for i%10 == 9, "train" otherwise (80/10/10).
func SynthSplit(i int) string {
	switch i % 10 {
	case 8:
		return "val"
	case 9:
		return "test"
	}
	return "train"
}

// SynthName is the name of synthetic image i: "synth_000042".
func SynthName(i int) string { return fmt.Sprintf("synth_%06d", i) }

// Synthesize renders the synthetic set in memory, calling emit for each image
// in index order with its sample (ID = index, Name = SynthName, File =
// Name+".jpg", objects with tight boxes in pixels) and its pixels. The output
// is a pure function of opts: each image has its own RNG stream derived from
// (Seed, index), so it does not depend on anything else. The returned classes
// are the label names. emit's error stops the run and is returned.
func Synthesize(opts SynthOptions, emit func(s Sample, img *Image) error) (classes []string, err error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	for i := 0; i < opts.Images; i++ {
		s, img := SynthImage(opts, i)
		if err := emit(s, img); err != nil {
			return nil, err
		}
	}
	return append([]string(nil), opts.Classes...), nil
}

// SynthImage renders synthetic image i of the set opts describes (opts as for
// Synthesize; invalid options panic, Synthesize validates them first).
func SynthImage(opts SynthOptions, i int) (Sample, *Image) {
	if err := opts.defaults(); err != nil {
		panic(err)
	}
	r := NewRNG(opts.Seed, 0x5e17, uint64(i))
	n := opts.Size
	c := &canvas{w: n, h: n, pix: make([]float32, 3*n*n)}
	c.background(r)
	c.strokes(r, 4+r.Intn(10), n)

	s := Sample{ID: int64(i), Name: SynthName(i), File: SynthName(i) + ".jpg", Width: n, Height: n}
	count := opts.MinObjects + r.Intn(opts.MaxObjects-opts.MinObjects+1)
	var placed []box.Box
	for k := 0; k < count; k++ {
		label := r.Intn(len(opts.Classes))
		shape := opts.Classes[label]
		// Log-uniform side: many small objects, a few large ones.
		lo, hi := math.Log(float64(opts.MinObject)), math.Log(float64(opts.MaxObject))
		side := math.Exp(r.Uniform(lo, hi))
		aspect := math.Exp(r.Uniform(math.Log(0.8), math.Log(1.25)))
		hw, hh := side*math.Sqrt(aspect)/2, side/math.Sqrt(aspect)/2
		angle := r.Uniform(-15, 15) * math.Pi / 180
		if shape == "triangle" || shape == "star" {
			angle = r.Uniform(-25, 25) * math.Pi / 180
		}
		// Place with bounded overlap: some occlusion, never hidden.
		var cx, cy float64
		var est box.Box
		ok := false
		reach := math.Hypot(hw, hh)
		for try := 0; try < 30 && !ok; try++ {
			cx = r.Uniform(reach, float64(n)-reach)
			cy = r.Uniform(reach, float64(n)-reach)
			est = box.Box{X0: cx - hw, Y0: cy - hh, X1: cx + hw, Y1: cy + hh}
			ok = true
			for _, p := range placed {
				inter := box.Intersect(est, p).Area()
				if box.IoU(est, p) > 0.3 || inter > 0.4*p.Area() || inter > 0.4*est.Area() {
					ok = false
					break
				}
			}
		}
		if !ok {
			continue
		}
		col := c.objectColour(r, int(cx), int(cy))
		bx, drawn := c.shape(shape, cx, cy, hw, hh, angle, col, r)
		if !drawn {
			continue
		}
		placed = append(placed, est)
		s.Objects = append(s.Objects, Object{Box: bx, Label: label})
	}
	// Later objects may cover parts of earlier ones; a box keeps the whole
	// shape (amodal), as VOC annotators do. Then a few strokes over
	// everything and sensor noise.
	c.strokes(r, r.Intn(4), n)
	c.noise(r, 4+r.Uniform(0, 8))
	return s, c.image()
}

// canvas is a float RGB drawing surface, values 0..255 (clamped on output).
type canvas struct {
	w, h int
	pix  []float32
}

func (c *canvas) image() *Image {
	m := NewImage(c.w, c.h)
	for i, v := range c.pix {
		m.Pix[i] = uint8(math.Max(0, math.Min(255, math.Round(float64(v)))))
	}
	return m
}

func randColour(r *RNG) [3]float32 {
	return [3]float32{float32(r.Uniform(0, 255)), float32(r.Uniform(0, 255)), float32(r.Uniform(0, 255))}
}

// background paints a two-colour linear gradient plus two octaves of smooth
// value noise per channel.
func (c *canvas) background(r *RNG) {
	c1, c2 := randColour(r), randColour(r)
	ang := r.Uniform(0, 2*math.Pi)
	dx, dy := math.Cos(ang), math.Sin(ang)
	type octave struct {
		g   int
		amp float64
		v   []float64
	}
	octs := []octave{{g: 4, amp: r.Uniform(15, 45)}, {g: 16, amp: r.Uniform(8, 25)}, {g: 48, amp: r.Uniform(0, 12)}}
	for k := range octs {
		o := &octs[k]
		o.v = make([]float64, 3*(o.g+1)*(o.g+1))
		for i := range o.v {
			o.v[i] = r.Uniform(-1, 1)
		}
	}
	n := float64(max(c.w, c.h))
	for y := 0; y < c.h; y++ {
		for x := 0; x < c.w; x++ {
			t := (float64(x)*dx+float64(y)*dy)/n*0.5 + 0.5
			t = math.Max(0, math.Min(1, t))
			for ch := 0; ch < 3; ch++ {
				v := float64(c1[ch])*(1-t) + float64(c2[ch])*t
				for _, o := range octs {
					fx := float64(x) / float64(c.w) * float64(o.g)
					fy := float64(y) / float64(c.h) * float64(o.g)
					ix, iy := int(fx), int(fy)
					ux, uy := fx-float64(ix), fy-float64(iy)
					ux, uy = ux*ux*(3-2*ux), uy*uy*(3-2*uy)
					at := func(i, j int) float64 { return o.v[3*(j*(o.g+1)+i)+ch] }
					a := at(ix, iy)*(1-ux) + at(ix+1, iy)*ux
					b := at(ix, iy+1)*(1-ux) + at(ix+1, iy+1)*ux
					v += o.amp * (a*(1-uy) + b*uy)
				}
				c.pix[(y*c.w+x)*3+ch] = float32(v)
			}
		}
	}
}

// strokes draws k distractor lines and arcs, 1 to 3 px wide.
func (c *canvas) strokes(r *RNG, k, n int) {
	for i := 0; i < k; i++ {
		col := randColour(r)
		width := r.Uniform(0.8, 3)
		alpha := float32(r.Uniform(0.5, 1))
		if r.Intn(2) == 0 {
			x0, y0 := r.Uniform(0, float64(n)), r.Uniform(0, float64(n))
			l := r.Uniform(0.1, 0.7) * float64(n)
			a := r.Uniform(0, 2*math.Pi)
			c.segment(x0, y0, x0+l*math.Cos(a), y0+l*math.Sin(a), width, col, alpha)
			continue
		}
		// An arc as a chain of short segments (an open curve, never a closed shape).
		cx, cy := r.Uniform(0, float64(n)), r.Uniform(0, float64(n))
		rad := r.Uniform(0.05, 0.4) * float64(n)
		a0 := r.Uniform(0, 2*math.Pi)
		span := r.Uniform(0.3, 1.5) * math.Pi / 2
		const steps = 16
		px, py := cx+rad*math.Cos(a0), cy+rad*math.Sin(a0)
		for s := 1; s <= steps; s++ {
			a := a0 + span*float64(s)/steps
			qx, qy := cx+rad*math.Cos(a), cy+rad*math.Sin(a)
			c.segment(px, py, qx, qy, width, col, alpha)
			px, py = qx, qy
		}
	}
}

// segment draws an anti-aliased line segment of the given width.
func (c *canvas) segment(x0, y0, x1, y1, width float64, col [3]float32, alpha float32) {
	hw := width / 2
	minX := int(math.Floor(math.Min(x0, x1) - hw - 1))
	maxX := int(math.Ceil(math.Max(x0, x1) + hw + 1))
	minY := int(math.Floor(math.Min(y0, y1) - hw - 1))
	maxY := int(math.Ceil(math.Max(y0, y1) + hw + 1))
	dx, dy := x1-x0, y1-y0
	l2 := dx*dx + dy*dy
	for y := max(0, minY); y < min(c.h, maxY); y++ {
		for x := max(0, minX); x < min(c.w, maxX); x++ {
			px, py := float64(x)+0.5, float64(y)+0.5
			t := 0.0
			if l2 > 0 {
				t = math.Max(0, math.Min(1, ((px-x0)*dx+(py-y0)*dy)/l2))
			}
			d := math.Hypot(px-(x0+t*dx), py-(y0+t*dy))
			cov := math.Max(0, math.Min(1, hw+0.5-d))
			if cov > 0 {
				c.blend(x, y, col, float32(cov)*alpha)
			}
		}
	}
}

func (c *canvas) blend(x, y int, col [3]float32, a float32) {
	o := (y*c.w + x) * 3
	for ch := 0; ch < 3; ch++ {
		c.pix[o+ch] = c.pix[o+ch]*(1-a) + col[ch]*a
	}
}

// objectColour picks a random colour far enough from the background around
// (x, y) to be visible; colour says nothing about the class.
func (c *canvas) objectColour(r *RNG, x, y int) [3]float32 {
	x, y = max(0, min(c.w-1, x)), max(0, min(c.h-1, y))
	o := (y*c.w + x) * 3
	bg := [3]float32{c.pix[o], c.pix[o+1], c.pix[o+2]}
	var col [3]float32
	for try := 0; try < 20; try++ {
		col = randColour(r)
		d := 0.0
		for ch := 0; ch < 3; ch++ {
			v := float64(col[ch] - bg[ch])
			d += v * v
		}
		if math.Sqrt(d) > 90 {
			break
		}
	}
	return col
}

// inside reports whether local point (u, v) in [-1, 1]^2 lies in the shape.
func inside(shape string, u, v float64) bool {
	au, av := math.Abs(u), math.Abs(v)
	switch shape {
	case "circle":
		return u*u+v*v <= 1
	case "ring":
		d := u*u + v*v
		return d <= 1 && d >= 0.55*0.55
	case "hexagon":
		const s3 = 1.7320508075688772
		return av <= s3/2 && s3*au+av <= s3
	case "square":
		return au <= 0.9 && av <= 0.9
	case "diamond":
		return au+av <= 1
	case "triangle":
		return v <= 0.8 && v >= -1 && au <= (v+1)/1.8*0.95
	case "cross":
		return (au <= 0.3 && av <= 1) || (av <= 0.3 && au <= 1)
	case "x":
		p, q := math.Abs(u+v)/math.Sqrt2, math.Abs(u-v)/math.Sqrt2
		return (p <= 0.25 && q <= 1) || (q <= 0.25 && p <= 1)
	case "star":
		rr := math.Hypot(u, v)
		if rr > 1 {
			return false
		}
		a := math.Atan2(u, -v) // 0 at the top point
		seg := 2 * math.Pi / 5
		t := math.Mod(a+2*math.Pi, seg) / seg // 0 at a tip, 0.5 between tips
		edge := 1 - (1-0.45)*(1-math.Abs(1-2*t))
		return rr <= edge
	}
	return false
}

// shape draws a filled shape centred at (cx, cy) with half sizes (hw, hh)
// rotated by angle, with 4x4 supersampled coverage and a faint texture. It
// returns the tight box of the pixels at least half covered.
func (c *canvas) shape(name string, cx, cy, hw, hh, angle float64, col [3]float32, r *RNG) (box.Box, bool) {
	reach := math.Hypot(hw, hh) + 1
	x0, x1 := max(0, int(math.Floor(cx-reach))), min(c.w, int(math.Ceil(cx+reach)))
	y0, y1 := max(0, int(math.Floor(cy-reach))), min(c.h, int(math.Ceil(cy+reach)))
	ca, sa := math.Cos(angle), math.Sin(angle)
	// Shading: a linear brightness ramp across the object.
	shade := r.Uniform(-30, 30)
	sdx, sdy := math.Cos(r.Uniform(0, 2*math.Pi)), 0.0
	sdy = math.Sqrt(1 - sdx*sdx)
	bx0, by0, bx1, by1 := c.w, c.h, -1, -1
	for y := y0; y < y1; y++ {
		for x := x0; x < x1; x++ {
			hits := 0
			for sy := 0; sy < 4; sy++ {
				for sx := 0; sx < 4; sx++ {
					px := float64(x) + (float64(sx)+0.5)/4 - cx
					py := float64(y) + (float64(sy)+0.5)/4 - cy
					u := (px*ca + py*sa) / hw
					v := (-px*sa + py*ca) / hh
					if inside(name, u, v) {
						hits++
					}
				}
			}
			if hits == 0 {
				continue
			}
			cov := float32(hits) / 16
			if hits >= 8 {
				bx0, by0, bx1, by1 = min(bx0, x), min(by0, y), max(bx1, x+1), max(by1, y+1)
			}
			u := ((float64(x)-cx)*sdx + (float64(y)-cy)*sdy) / math.Max(hw, hh)
			k := float32(shade * u)
			sc := [3]float32{col[0] + k, col[1] + k, col[2] + k}
			c.blend(x, y, sc, cov)
		}
	}
	if bx1 <= bx0 || by1 <= by0 {
		return box.Box{}, false
	}
	return box.Box{X0: float64(bx0), Y0: float64(by0), X1: float64(bx1), Y1: float64(by1)}, true
}

// noise adds uniform per-pixel noise of the given amplitude.
func (c *canvas) noise(r *RNG, amp float64) {
	for i := range c.pix {
		c.pix[i] += float32(r.Uniform(-amp, amp))
	}
}

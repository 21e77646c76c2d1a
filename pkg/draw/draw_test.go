package draw

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"yolodistill/pkg/box"
)

var grey = color.RGBA{100, 100, 100, 255}

func canvas(w, h int) *image.RGBA {
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	fill(m, m.Bounds(), grey)
	return m
}

func TestOutlineEdges(t *testing.T) {
	tests := []struct {
		name      string
		b         box.Box
		thickness int
		on        []image.Point // must have the colour
		off       []image.Point // must keep the background
	}{
		{"integer box", box.Box{X0: 10, Y0: 20, X1: 50, Y1: 60}, 2,
			[]image.Point{{10, 20}, {11, 21}, {49, 59}, {48, 58}, {30, 20}, {30, 59}, {10, 40}, {49, 40}},
			[]image.Point{{9, 20}, {50, 40}, {30, 19}, {30, 60}, {12, 40}, {47, 40}, {30, 22}, {30, 57}}},
		{"fractional box covers floor/ceil", box.Box{X0: 10.5, Y0: 20.2, X1: 49.5, Y1: 59.1}, 3,
			[]image.Point{{10, 20}, {12, 40}, {49, 40}, {47, 40}, {30, 59}},
			[]image.Point{{9, 40}, {13, 40}, {46, 40}, {50, 40}, {30, 60}}},
		{"thin box is filled", box.Box{X0: 5, Y0: 5, X1: 7, Y1: 30}, 3,
			[]image.Point{{5, 5}, {6, 15}, {6, 29}},
			[]image.Point{{7, 15}, {4, 15}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := canvas(100, 80)
			c := ClassColor(3)
			Outline(m, tc.b, c, tc.thickness)
			for _, p := range tc.on {
				if got := m.RGBAAt(p.X, p.Y); got != c {
					t.Errorf("pixel %v = %v, want class colour %v", p, got, c)
				}
			}
			for _, p := range tc.off {
				if got := m.RGBAAt(p.X, p.Y); got != grey {
					t.Errorf("pixel %v = %v, want background", p, got)
				}
			}
		})
	}
}

func TestOutlineOutsideNoPanic(t *testing.T) {
	inf := math.Inf(1)
	boxes := []struct {
		name string
		b    box.Box
	}{
		{"left overhang", box.Box{X0: -30, Y0: 10, X1: 20, Y1: 30}},
		{"all around", box.Box{X0: -10, Y0: -10, X1: 200, Y1: 200}},
		{"fully outside", box.Box{X0: 500, Y0: 500, X1: 600, Y1: 600}},
		{"inverted", box.Box{X0: 30, Y0: 30, X1: 10, Y1: 10}},
		{"huge", box.Box{X0: -1e300, Y0: -1e300, X1: 1e300, Y1: 1e300}},
		{"nan", box.Box{X0: math.NaN(), Y0: 0, X1: 10, Y1: 10}},
		{"inf", box.Box{X0: 0, Y0: 0, X1: inf, Y1: 10}},
	}
	for _, tc := range boxes {
		t.Run(tc.name, func(t *testing.T) {
			m := canvas(64, 48)
			Outline(m, tc.b, ClassColor(0), 3)
			if _, err := Tag(m, tc.b, "circle 0.99", ClassColor(0), 12); err != nil {
				t.Fatal(err)
			}
			if err := Detections(m, []box.Scored{{Box: tc.b, Score: 0.5, Label: 7}}, []string{"a"}, Style{}); err != nil {
				t.Fatal(err)
			}
		})
	}
	// the visible part of an overhanging box is drawn
	m := canvas(64, 48)
	Outline(m, box.Box{X0: -30, Y0: 10, X1: 20, Y1: 30}, ClassColor(1), 2)
	if m.RGBAAt(19, 20) != ClassColor(1) || m.RGBAAt(5, 10) != ClassColor(1) {
		t.Errorf("visible right and top edges of an overhanging box not drawn")
	}
	if m.RGBAAt(0, 20) != grey {
		t.Errorf("left edge lies outside the image and must not appear at x=0")
	}
}

// countColour counts pixels of r in m equal to c.
func countColour(m *image.RGBA, r image.Rectangle, c color.RGBA) int {
	n := 0
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			if m.RGBAAt(x, y) == c {
				n++
			}
		}
	}
	return n
}

func TestTagTextInsideAndClamped(t *testing.T) {
	tests := []struct {
		name string
		b    box.Box
		bg   color.RGBA
	}{
		{"room above", box.Box{X0: 40, Y0: 60, X1: 120, Y1: 120}, ClassColor(2)},
		{"top edge: tag inside box", box.Box{X0: 40, Y0: 0, X1: 120, Y1: 60}, ClassColor(8)},
		{"right edge", box.Box{X0: 190, Y0: 80, X1: 200, Y1: 100}, ClassColor(0)},
		{"bottom-right corner", box.Box{X0: 195, Y0: 145, X1: 260, Y1: 200}, ClassColor(5)},
		{"left overhang", box.Box{X0: -50, Y0: 70, X1: 10, Y1: 90}, ClassColor(12)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := canvas(200, 150)
			r, err := Tag(m, tc.b, "triangle 0.87", tc.bg, 14)
			if err != nil {
				t.Fatal(err)
			}
			if r.Empty() || !r.In(m.Bounds()) {
				t.Fatalf("tag %v not inside image %v", r, m.Bounds())
			}
			if r.Dx() < 60 || r.Dy() < 12 {
				t.Fatalf("tag %v too small for 13 characters at 14 px", r)
			}
			txt := TextColor(tc.bg)
			// text pixels (exact text colour) inside the tag, and plenty of background
			nText := countColour(m, r, txt)
			nBg := countColour(m, r, tc.bg)
			if nText < 40 {
				t.Errorf("only %d text-coloured pixels inside the tag", nText)
			}
			if nBg < r.Dx()*r.Dy()/3 {
				t.Errorf("only %d of %d tag pixels have the tag colour", nBg, r.Dx()*r.Dy())
			}
			// nothing drawn outside the tag
			outside := 0
			for y := 0; y < 150; y++ {
				for x := 0; x < 200; x++ {
					if !(image.Pt(x, y).In(r)) && m.RGBAAt(x, y) != grey {
						outside++
					}
				}
			}
			if outside != 0 {
				t.Errorf("%d pixels changed outside the tag", outside)
			}
			if tc.name == "room above" && r.Max.Y != 60 {
				t.Errorf("tag %v should sit on the box's top edge (y=60)", r)
			}
			if tc.name == "top edge: tag inside box" && r.Min.Y != 0 {
				t.Errorf("tag %v should start at the box top (y=0)", r)
			}
		})
	}
}

func TestTextColourContrast(t *testing.T) {
	for i, c := range Palette {
		tc := TextColor(c)
		l := func(c color.RGBA) float64 {
			return 0.2126*float64(c.R) + 0.7152*float64(c.G) + 0.0722*float64(c.B)
		}
		if d := math.Abs(l(tc) - l(c)); d < 100 {
			t.Errorf("palette %d %v: text %v luminance difference %.0f < 100", i, c, tc, d)
		}
	}
	if ClassColor(len(Palette)+1) != Palette[1] || ClassColor(-3) != Palette[0] {
		t.Errorf("ClassColor does not cycle / handle negatives")
	}
}

func TestLabel(t *testing.T) {
	tests := []struct {
		name  string
		label int
		score float64
		want  string
	}{
		{"named", 1, 0.8749, "ring 0.87"},
		{"out of range", 5, 0.5, "class5 0.50"},
		{"negative", -1, 1, "class-1 1.00"},
	}
	for _, tc := range tests {
		if got := Label([]string{"circle", "ring"}, tc.label, tc.score); got != tc.want {
			t.Errorf("%s: Label = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestDetectionsColoursPerClass(t *testing.T) {
	m := canvas(300, 200)
	dets := []box.Scored{
		{Box: box.Box{X0: 20, Y0: 40, X1: 120, Y1: 180}, Score: 0.9, Label: 0},
		{Box: box.Box{X0: 150, Y0: 50, X1: 280, Y1: 190}, Score: 0.6, Label: 1},
	}
	if err := Detections(m, dets, []string{"circle", "ring"}, Style{}); err != nil {
		t.Fatal(err)
	}
	// left edge mid-height and bottom edges carry each class's colour
	if got := m.RGBAAt(20, 120); got != ClassColor(0) {
		t.Errorf("left edge of box 0 = %v, want %v", got, ClassColor(0))
	}
	if got := m.RGBAAt(279, 120); got != ClassColor(1) {
		t.Errorf("right edge of box 1 = %v, want %v", got, ClassColor(1))
	}
	// box interiors untouched
	if m.RGBAAt(70, 120) != grey || m.RGBAAt(215, 120) != grey {
		t.Errorf("box interiors were painted")
	}
}

func TestSaveByExtension(t *testing.T) {
	dir := t.TempDir()
	m := canvas(40, 30)
	Outline(m, box.Box{X0: 5, Y0: 5, X1: 35, Y1: 25}, ClassColor(2), 2)
	for _, name := range []string{"a.png", "b.jpg", "c.JPEG"} {
		p := filepath.Join(dir, name)
		if err := Save(p, m); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var img image.Image
		if strings.HasSuffix(name, ".png") {
			img, err = png.Decode(bytes.NewReader(data))
		} else {
			img, err = jpeg.Decode(bytes.NewReader(data))
		}
		if err != nil {
			t.Fatalf("%s does not decode as its extension says: %v", name, err)
		}
		if img.Bounds() != m.Bounds() {
			t.Errorf("%s: bounds %v", name, img.Bounds())
		}
		if name == "a.png" {
			r, g, b, _ := img.At(5, 15).RGBA()
			c := ClassColor(2)
			if uint8(r>>8) != c.R || uint8(g>>8) != c.G || uint8(b>>8) != c.B {
				t.Errorf("PNG lost the outline colour")
			}
		}
	}
	err := Save(filepath.Join(dir, "x.bmp"), m)
	if err == nil || !strings.Contains(err.Error(), "x.bmp") {
		t.Errorf("Save .bmp: err %v, want an error naming the file", err)
	}
	if _, serr := os.Stat(filepath.Join(dir, "x.bmp")); serr == nil {
		t.Errorf("x.bmp was created despite the error")
	}
}

func TestAutoStyle(t *testing.T) {
	tests := []struct {
		name      string
		w, h      int
		thickness int
		fontLo    float64
		fontHi    float64
	}{
		{"tiny", 64, 64, 2, 6, 6},
		{"demo", 128, 128, 2, 8, 8},
		{"small", 200, 150, 2, 11, 11},
		{"bccd", 640, 480, 3, 15, 17},
		{"huge", 4000, 3000, 3, 28, 28},
	}
	for _, tc := range tests {
		s := AutoStyle(tc.w, tc.h)
		if s.Thickness != tc.thickness || s.FontPx < tc.fontLo || s.FontPx > tc.fontHi {
			t.Errorf("%s: AutoStyle = %+v", tc.name, s)
		}
	}
}

// TestTagsFitSmallImages: on the demo's 128 px images a detection's tag
// takes under half the image's width and an eighth of its height; on a
// 48 px image a tag wider than the image at the asked size is shrunk to fit.
func TestTagsFitSmallImages(t *testing.T) {
	m := canvas(128, 128)
	st := AutoStyle(128, 128)
	r, err := Tag(m, box.Box{X0: 30, Y0: 40, X1: 90, Y1: 100}, "circle 0.87", ClassColor(0), st.FontPx)
	if err != nil {
		t.Fatal(err)
	}
	if !r.In(m.Bounds()) || r.Dx() > 64 || r.Dy() > 16 || r.Dx() < 30 {
		t.Errorf("tag %v on a 128 px image (font %g px)", r, st.FontPx)
	}
	m = canvas(48, 48)
	r, err = Tag(m, box.Box{X0: 5, Y0: 20, X1: 40, Y1: 40}, "triangle 0.87", ClassColor(2), 14)
	if err != nil {
		t.Fatal(err)
	}
	if r.Dx() > 48 || r.Dx() < 30 || r.Dy() > 14 {
		t.Errorf("tag %v on a 48 px image, want at most its width", r)
	}
	if n := r.Dx()*r.Dy() - countColour(m, r, ClassColor(2)); n < 20 {
		t.Errorf("only %d text pixels in the shrunk tag %v", n, r)
	}
}

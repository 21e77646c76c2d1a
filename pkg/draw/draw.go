package draw

import (
	"fmt"
	"image"
	"image/color"
	stddraw "image/draw"
	"image/jpeg"
	"image/png"
	"io"
	"math"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"golang.org/x/image/font"
	"golang.org/x/image/font/gofont/gomonobold"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"

	"yolodistill/pkg/atomicfile"
	"yolodistill/pkg/box"
)

// Palette is the fixed colour of each class: class k gets Palette[k %
// len(Palette)]. The colours are saturated and far apart, so neighbouring
// classes are easy to tell apart on photographs.
var Palette = []color.RGBA{
	{230, 25, 75, 255},   // red
	{60, 180, 75, 255},   // green
	{0, 130, 200, 255},   // blue
	{245, 130, 48, 255},  // orange
	{145, 30, 180, 255},  // purple
	{70, 240, 240, 255},  // cyan
	{240, 50, 230, 255},  // magenta
	{210, 245, 60, 255},  // lime
	{255, 225, 25, 255},  // yellow
	{0, 128, 128, 255},   // teal
	{170, 110, 40, 255},  // brown
	{128, 0, 0, 255},     // maroon
	{0, 0, 128, 255},     // navy
	{128, 128, 0, 255},   // olive
	{250, 190, 212, 255}, // pink
	{220, 190, 255, 255}, // lavender
	{170, 255, 195, 255}, // mint
	{255, 215, 180, 255}, // apricot
	{128, 128, 128, 255}, // grey
	{255, 250, 200, 255}, // beige
}

// ClassColor returns the colour of class label (Palette, cycling; a negative
// label gets Palette[0]).
func ClassColor(label int) color.RGBA {
	if label < 0 {
		return Palette[0]
	}
	return Palette[label%len(Palette)]
}

// TextColor returns black or white, whichever contrasts more with bg
// (relative luminance with the sRGB weights).
func TextColor(bg color.RGBA) color.RGBA {
	l := 0.2126*float64(bg.R) + 0.7152*float64(bg.G) + 0.0722*float64(bg.B)
	if l > 140 {
		return color.RGBA{0, 0, 0, 255}
	}
	return color.RGBA{255, 255, 255, 255}
}

// Style says how detections are drawn. The zero value means "choose from the
// image size" for every field (AutoStyle).
type Style struct {
	Thickness int     // outline width in pixels (2 or 3 by default)
	FontPx    float64 // label font size in pixels (em height)
}

// AutoStyle returns the style used for an image of w x h pixels: 2 px lines
// below 600 px on the longer side, 3 px from there; a font of about 1/40 of
// the longer side, between 11 and 28 px, except on small images (under 176
// px), where it is 1/16 of the longer side (at least 6 px), so that a tag
// such as "circle 0.87" takes under half the width of a 128 px image.
func AutoStyle(w, h int) Style {
	long := max(w, h)
	s := Style{Thickness: 2, FontPx: math.Round(float64(long) / 40)}
	if long >= 600 {
		s.Thickness = 3
	}
	s.FontPx = math.Min(28, math.Max(11, s.FontPx))
	if long < 176 {
		s.FontPx = math.Max(6, math.Round(float64(long)/16))
	}
	return s
}

// pixelRect converts a box to the integer pixel rectangle it covers
// ([floor(X0), ceil(X1)) x [floor(Y0), ceil(Y1))), with coordinates limited to
// lim (bounds grown by a margin) so that huge values cannot overflow int. ok is
// false when a coordinate is not finite.
func pixelRect(b box.Box, lim image.Rectangle) (r image.Rectangle, ok bool) {
	for _, v := range [4]float64{b.X0, b.Y0, b.X1, b.Y1} {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return image.Rectangle{}, false
		}
	}
	cl := func(v float64, lo, hi int) int {
		return int(math.Max(float64(lo), math.Min(float64(hi), v)))
	}
	r.Min.X = cl(math.Floor(b.X0), lim.Min.X, lim.Max.X)
	r.Min.Y = cl(math.Floor(b.Y0), lim.Min.Y, lim.Max.Y)
	r.Max.X = cl(math.Ceil(b.X1), lim.Min.X, lim.Max.X)
	r.Max.Y = cl(math.Ceil(b.Y1), lim.Min.Y, lim.Max.Y)
	return r, true
}

// fill paints r ∩ dst.Bounds() with c.
func fill(dst *image.RGBA, r image.Rectangle, c color.RGBA) {
	r = r.Intersect(dst.Bounds())
	if r.Empty() {
		return
	}
	stddraw.Draw(dst, r, image.NewUniform(c), image.Point{}, stddraw.Src)
}

// Outline draws the outline of b (half-open pixel xyxy) onto dst in colour c,
// thickness pixels wide on the inside of the box (a box thinner than twice the
// thickness is filled). Parts outside dst are clipped; a box with a
// non-finite coordinate or an empty box draws nothing. thickness < 1 means 1.
func Outline(dst *image.RGBA, b box.Box, c color.RGBA, thickness int) {
	thickness = max(thickness, 1)
	lim := dst.Bounds().Inset(-thickness - 1)
	r, ok := pixelRect(b, lim)
	if !ok || r.Empty() {
		return
	}
	t := thickness
	fill(dst, image.Rect(r.Min.X, r.Min.Y, r.Max.X, min(r.Min.Y+t, r.Max.Y)), c) // top
	fill(dst, image.Rect(r.Min.X, max(r.Max.Y-t, r.Min.Y), r.Max.X, r.Max.Y), c) // bottom
	fill(dst, image.Rect(r.Min.X, r.Min.Y, min(r.Min.X+t, r.Max.X), r.Max.Y), c) // left
	fill(dst, image.Rect(max(r.Max.X-t, r.Min.X), r.Min.Y, r.Max.X, r.Max.Y), c) // right
}

var (
	fontOnce sync.Once
	fontData *opentype.Font
	fontErr  error
)

// newFace returns a Go Mono Bold face of px pixels (faces are not safe for
// concurrent use, so each drawing call makes its own).
func newFace(px float64) (font.Face, error) {
	fontOnce.Do(func() { fontData, fontErr = opentype.Parse(gomonobold.TTF) })
	if fontErr != nil {
		return nil, fmt.Errorf("draw: label font: %w", fontErr)
	}
	return opentype.NewFace(fontData, &opentype.FaceOptions{Size: px, DPI: 72, Hinting: font.HintingFull})
}

// TagLayout is where a tag goes: the filled rectangle and the text's
// baseline origin, in dst pixels.
type TagLayout struct {
	Rect image.Rectangle
	Dot  image.Point
}

// layoutTag places a tag holding text for the box rectangle r in bounds:
// above the box's top-left corner when there is room, otherwise just inside
// the box's top edge; then shifted to lie inside bounds (when the tag is
// larger than bounds its top-left corner stays inside).
func layoutTag(face font.Face, text string, r, bounds image.Rectangle) TagLayout {
	m := face.Metrics()
	asc, desc := m.Ascent.Ceil(), m.Descent.Ceil()
	pad := max(2, (asc+desc)/6)
	tw := font.MeasureString(face, text).Ceil()
	w, h := tw+2*pad, asc+desc+2*pad
	x, y := r.Min.X, r.Min.Y-h
	if y < bounds.Min.Y {
		y = r.Min.Y
	}
	x = min(x, bounds.Max.X-w)
	y = min(y, bounds.Max.Y-h)
	x = max(x, bounds.Min.X)
	y = max(y, bounds.Min.Y)
	return TagLayout{Rect: image.Rect(x, y, x+w, y+h), Dot: image.Pt(x+pad, y+pad+asc)}
}

// minFontPx is the smallest font Tag shrinks a tag's text to.
const minFontPx = 5

// Tag draws a filled rectangle of colour bg holding text (in black or white,
// see TextColor) for the box b (half-open pixel xyxy) onto dst, placed as
// described in layoutTag, and returns the tag's rectangle (clipped to dst).
// Text is drawn with a Go Mono Bold face of fontPx pixels (fontPx <= 0: 12),
// smaller when the tag would be wider than dst (down to 5 px: the tag then
// fits the image's width unless the text is very long).
// A box with a non-finite coordinate draws nothing and returns an empty
// rectangle.
func Tag(dst *image.RGBA, b box.Box, text string, bg color.RGBA, fontPx float64) (image.Rectangle, error) {
	if fontPx <= 0 {
		fontPx = 12
	}
	r, ok := pixelRect(b, dst.Bounds().Inset(-2))
	if !ok {
		return image.Rectangle{}, nil
	}
	face, err := newFace(fontPx)
	if err != nil {
		return image.Rectangle{}, err
	}
	lay := layoutTag(face, text, r, dst.Bounds())
	if bw := dst.Bounds().Dx(); lay.Rect.Dx() > bw && fontPx > minFontPx {
		// Wider than the image: the largest font that fits (not below
		// minFontPx).
		face.Close()
		fontPx = math.Max(minFontPx, math.Floor(fontPx*float64(bw)/float64(lay.Rect.Dx())))
		if face, err = newFace(fontPx); err != nil {
			return image.Rectangle{}, err
		}
		lay = layoutTag(face, text, r, dst.Bounds())
	}
	defer face.Close()
	fill(dst, lay.Rect, bg)
	d := font.Drawer{Dst: dst, Src: image.NewUniform(TextColor(bg)), Face: face, Dot: fixed.P(lay.Dot.X, lay.Dot.Y)}
	d.DrawString(text)
	return lay.Rect.Intersect(dst.Bounds()), nil
}

// Label is the text of a detection's tag: "name 0.87" (two decimals), where
// name is classes[label], or "class<label>" when label is out of range.
func Label(classes []string, label int, score float64) string {
	name := fmt.Sprintf("class%d", label)
	if label >= 0 && label < len(classes) && classes[label] != "" {
		name = classes[label]
	}
	return fmt.Sprintf("%s %.2f", name, score)
}

// Detections draws every detection (boxes in dst's pixels) onto dst: first all
// outlines, then all tags, lowest score first so that the best detection's tag
// ends on top. classes names the labels (see Label). A zero style field
// takes its AutoStyle value for dst's size.
func Detections(dst *image.RGBA, dets []box.Scored, classes []string, st Style) error {
	auto := AutoStyle(dst.Bounds().Dx(), dst.Bounds().Dy())
	if st.Thickness <= 0 {
		st.Thickness = auto.Thickness
	}
	if st.FontPx <= 0 {
		st.FontPx = auto.FontPx
	}
	order := make([]int, len(dets))
	for i := range order {
		order[i] = i
	}
	// ascending score, stable: draw low scores first
	sort.SliceStable(order, func(a, b int) bool { return dets[order[a]].Score < dets[order[b]].Score })
	for _, i := range order {
		Outline(dst, dets[i].Box, ClassColor(dets[i].Label), st.Thickness)
	}
	for _, i := range order {
		d := dets[i]
		if _, err := Tag(dst, d.Box, Label(classes, d.Label, d.Score), ClassColor(d.Label), st.FontPx); err != nil {
			return err
		}
	}
	return nil
}

// JPEGQuality is the quality Encode uses for JPEG output.
const JPEGQuality = 92

// Encode writes img to w as JPEG (ext ".jpg" or ".jpeg") or PNG (".png"),
// case-insensitively; any other extension is an error.
func Encode(w io.Writer, img image.Image, ext string) error {
	switch strings.ToLower(ext) {
	case ".jpg", ".jpeg":
		return jpeg.Encode(w, img, &jpeg.Options{Quality: JPEGQuality})
	case ".png":
		return png.Encode(w, img)
	}
	return fmt.Errorf("cannot write images with extension %q (want .jpg, .jpeg or .png)", ext)
}

// Save writes img to path atomically (pkg/atomicfile), encoded by the path's
// extension as in Encode. Errors name the path.
func Save(path string, img image.Image) error {
	ext := filepath.Ext(path)
	if err := Encode(io.Discard, image.NewRGBA(image.Rect(0, 0, 1, 1)), ext); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return atomicfile.Write(path, func(w io.Writer) error { return Encode(w, img, ext) })
}

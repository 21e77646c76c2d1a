package dataset

import (
	"bufio"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// DefaultMaxPixels is the pixel limit used when a caller passes maxPixels <= 0:
// 8192 x 8192. An image whose header announces more pixels is rejected before
// any pixel is decoded, so a hostile header cannot make us allocate gigabytes.
const DefaultMaxPixels = 8192 * 8192

// Image is an 8-bit RGB image: row-major, 3 bytes per pixel (R, G, B), no
// padding between rows. Pixel (x, y), channel c (0 R, 1 G, 2 B) is
// Pix[(y*W+x)*3+c]; x in [0, W), y in [0, H), origin top-left.
type Image struct {
	W, H int
	Pix  []uint8 // len 3*W*H
}

// NewImage returns a black w x h image. It panics if w or h is negative.
func NewImage(w, h int) *Image {
	if w < 0 || h < 0 {
		panic(fmt.Sprintf("dataset.NewImage: negative size %dx%d", w, h))
	}
	return &Image{W: w, H: h, Pix: make([]uint8, 3*w*h)}
}

// Offset is the index in Pix of channel 0 of pixel (x, y). It does not check bounds.
func (m *Image) Offset(x, y int) int { return (y*m.W + x) * 3 }

// RGBA converts m to a standard library image (alpha 255), for encoders and drawing.
func (m *Image) RGBA() *image.RGBA {
	out := image.NewRGBA(image.Rect(0, 0, m.W, m.H))
	for i, j := 0, 0; i < len(m.Pix); i, j = i+3, j+4 {
		out.Pix[j], out.Pix[j+1], out.Pix[j+2], out.Pix[j+3] = m.Pix[i], m.Pix[i+1], m.Pix[i+2], 255
	}
	return out
}

// EncodePNG writes m as an 8-bit RGB PNG (lossless; Decode gives m back).
func EncodePNG(w io.Writer, m *Image) error {
	return png.Encode(w, m.RGBA())
}

// ImageError is the error DecodeImage and ReadImageConfig return. Kind says
// what went wrong, for reports and tests; Err is the underlying error.
type ImageError struct {
	File string
	Kind string // one of the Kind* constants of Problem (image-missing, image-unreadable, image-corrupt, image-too-large, image-format)
	Err  error
}

func (e *ImageError) Error() string { return fmt.Sprintf("%s: %v", e.File, e.Err) }
func (e *ImageError) Unwrap() error { return e.Err }

// ImageConfig is what an image's header says.
type ImageConfig struct {
	W, H   int
	Format string // "jpeg" or "png"
}

// ReadImageConfig reads only the header of the JPEG or PNG file at path.
// Errors are *ImageError.
func ReadImageConfig(path string) (ImageConfig, error) {
	f, err := os.Open(path)
	if err != nil {
		return ImageConfig{}, openError(path, err)
	}
	defer f.Close()
	return readConfig(path, bufio.NewReader(f))
}

func openError(path string, err error) error {
	if errors.Is(err, os.ErrNotExist) {
		return &ImageError{path, KindImageMissing, errors.New("image file not found")}
	}
	if strings.Contains(err.Error(), "escapes") {
		// os.Root refuses a symbolic link that leads out of the root.
		return &ImageError{path, KindPathEscape, fmt.Errorf("image file leads out of the image folder: %w", err)}
	}
	return &ImageError{path, KindImageUnreadable, err}
}

func readConfig(path string, r io.Reader) (ImageConfig, error) {
	cfg, format, err := image.DecodeConfig(r)
	if err != nil {
		if errors.Is(err, image.ErrFormat) {
			return ImageConfig{}, &ImageError{path, KindImageFormat, errors.New("not a JPEG or PNG image")}
		}
		return ImageConfig{}, &ImageError{path, KindImageCorrupt, fmt.Errorf("bad image header: %w", err)}
	}
	if format != "jpeg" && format != "png" {
		return ImageConfig{}, &ImageError{path, KindImageFormat, fmt.Errorf("image format %q is not supported (JPEG and PNG are)", format)}
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return ImageConfig{}, &ImageError{path, KindImageCorrupt, fmt.Errorf("image header gives size %dx%d", cfg.Width, cfg.Height)}
	}
	return ImageConfig{W: cfg.Width, H: cfg.Height, Format: format}, nil
}

// DecodeImage decodes the JPEG or PNG file at path into RGB. The header is read
// first; an image with more than maxPixels pixels (DefaultMaxPixels when
// maxPixels <= 0) is rejected before decoding. A truncated or corrupt file is
// an error, never a partial image. Alpha is dropped (straight colour kept),
// grey is replicated to R, G and B, 16-bit PNG keeps the high byte.
// Errors are *ImageError.
func DecodeImage(path string, maxPixels int) (*Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, openError(path, err)
	}
	defer f.Close()
	return decodeFile(path, f, maxPixels)
}

// decodeFile decodes an open file (a seeker: the header is read, then decoding
// restarts from the beginning).
func decodeFile(path string, f io.ReadSeeker, maxPixels int) (*Image, error) {
	if maxPixels <= 0 {
		maxPixels = DefaultMaxPixels
	}
	br := bufio.NewReaderSize(f, 64<<10)
	cfg, err := readConfig(path, br)
	if err != nil {
		return nil, err
	}
	if int64(cfg.W)*int64(cfg.H) > int64(maxPixels) {
		return nil, &ImageError{path, KindImageTooLarge, fmt.Errorf("image is %dx%d = %d pixels, over the limit of %d", cfg.W, cfg.H, int64(cfg.W)*int64(cfg.H), maxPixels)}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, &ImageError{path, KindImageUnreadable, err}
	}
	br.Reset(f)
	var img image.Image
	switch cfg.Format {
	case "jpeg":
		img, err = jpeg.Decode(br)
	default:
		img, err = png.Decode(br)
	}
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, &ImageError{path, KindImageCorrupt, fmt.Errorf("truncated %s: %w", cfg.Format, err)}
		}
		return nil, &ImageError{path, KindImageCorrupt, fmt.Errorf("corrupt %s: %w", cfg.Format, err)}
	}
	if b := img.Bounds(); b.Dx() != cfg.W || b.Dy() != cfg.H {
		return nil, &ImageError{path, KindImageCorrupt, fmt.Errorf("decoded size %dx%d differs from header %dx%d", b.Dx(), b.Dy(), cfg.W, cfg.H)}
	}
	return FromStdImage(img), nil
}

// FromStdImage converts any standard library image to RGB (see DecodeImage for
// alpha, grey and 16-bit handling). The result starts at (0, 0) whatever the
// source bounds.
func FromStdImage(img image.Image) *Image {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	out := NewImage(w, h)
	p := out.Pix
	switch src := img.(type) {
	case *image.YCbCr:
		if !ycbcrToRGB(p, src) {
			for y := 0; y < h; y++ {
				o := y * w * 3
				for x := 0; x < w; x++ {
					yi := src.YOffset(b.Min.X+x, b.Min.Y+y)
					ci := src.COffset(b.Min.X+x, b.Min.Y+y)
					r, g, bb := color.YCbCrToRGB(src.Y[yi], src.Cb[ci], src.Cr[ci])
					p[o], p[o+1], p[o+2] = r, g, bb
					o += 3
				}
			}
		}
	case *image.Gray:
		for y := 0; y < h; y++ {
			row := src.Pix[y*src.Stride : y*src.Stride+w]
			o := y * w * 3
			for _, v := range row {
				p[o], p[o+1], p[o+2] = v, v, v
				o += 3
			}
		}
	case *image.NRGBA:
		copyRGBX(p, src.Pix, src.Stride, w, h)
	case *image.RGBA:
		copyRGBX(p, src.Pix, src.Stride, w, h)
	default:
		o := 0
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				c := color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA)
				p[o], p[o+1], p[o+2] = c.R, c.G, c.B
				o += 3
			}
		}
	}
	return out
}

// ycbcrToRGB converts a YCbCr image whose bounds start at (0, 0) into dst
// (RGB, 3 bytes per pixel) with the same integer arithmetic as
// color.YCbCrToRGB, row by row. It reports false for layouts it does not
// handle (the caller then converts pixel by pixel).
func ycbcrToRGB(dst []uint8, src *image.YCbCr) bool {
	if src.Rect.Min != (image.Point{}) {
		return false
	}
	var hs, vs uint // chroma subsampling shifts
	switch src.SubsampleRatio {
	case image.YCbCrSubsampleRatio444:
	case image.YCbCrSubsampleRatio422:
		hs = 1
	case image.YCbCrSubsampleRatio420:
		hs, vs = 1, 1
	case image.YCbCrSubsampleRatio440:
		vs = 1
	case image.YCbCrSubsampleRatio411:
		hs = 2
	case image.YCbCrSubsampleRatio410:
		hs, vs = 2, 1
	default:
		return false
	}
	w, h := src.Rect.Dx(), src.Rect.Dy()
	for y := 0; y < h; y++ {
		yrow := src.Y[y*src.YStride : y*src.YStride+w]
		cbase := (y >> vs) * src.CStride
		out := dst[y*w*3 : (y+1)*w*3]
		for x, yv := range yrow {
			ci := cbase + x>>hs
			yy1 := int32(yv) * 0x10101
			cb1 := int32(src.Cb[ci]) - 128
			cr1 := int32(src.Cr[ci]) - 128
			r := yy1 + 91881*cr1
			if uint32(r)&0xff000000 == 0 {
				r >>= 16
			} else {
				r = ^(r >> 31)
			}
			g := yy1 - 22554*cb1 - 46802*cr1
			if uint32(g)&0xff000000 == 0 {
				g >>= 16
			} else {
				g = ^(g >> 31)
			}
			bl := yy1 + 116130*cb1
			if uint32(bl)&0xff000000 == 0 {
				bl >>= 16
			} else {
				bl = ^(bl >> 31)
			}
			o := x * 3
			out[o], out[o+1], out[o+2] = uint8(r), uint8(g), uint8(bl)
		}
	}
	return true
}

// copyRGBX copies the first three of every four bytes (RGBA or NRGBA rows).
func copyRGBX(dst, src []uint8, stride, w, h int) {
	o := 0
	for y := 0; y < h; y++ {
		row := src[y*stride : y*stride+4*w]
		for i := 0; i < len(row); i += 4 {
			dst[o], dst[o+1], dst[o+2] = row[i], row[i+1], row[i+2]
			o += 3
		}
	}
}

// openInRoot opens name (slash-separated, relative) inside root without
// letting it escape root, through "..", an absolute path or a symbolic link.
func openInRoot(root, name string) (*os.File, error) {
	if !localName(name) {
		return nil, fmt.Errorf("file name %q escapes the image folder", name)
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return r.Open(filepath.FromSlash(name))
}

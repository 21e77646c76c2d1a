package dataset

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

// testPattern is a w x h RGB image with distinct values per pixel and channel.
func testPattern(w, h int) *Image {
	m := NewImage(w, h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			o := m.Offset(x, y)
			m.Pix[o], m.Pix[o+1], m.Pix[o+2] = uint8(x*7+y), uint8(y*5+3), uint8(x*y+11)
		}
	}
	return m
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func pngBytes(t testing.TB, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func jpegBytes(t testing.TB, m *Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, m.RGBA(), &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestDecodePNGExact(t *testing.T) {
	dir := t.TempDir()
	want := testPattern(13, 7)
	var b bytes.Buffer
	if err := EncodePNG(&b, want); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "a.png")
	writeFile(t, p, b.Bytes())
	got, err := DecodeImage(p, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got.W != 13 || got.H != 7 || !bytes.Equal(got.Pix, want.Pix) {
		t.Fatalf("PNG round trip differs: %dx%d", got.W, got.H)
	}
}

func TestDecodeConversions(t *testing.T) {
	dir := t.TempDir()
	gray := image.NewGray(image.Rect(0, 0, 3, 2))
	gray.Pix = []uint8{0, 50, 100, 150, 200, 250}
	nrgba := image.NewNRGBA(image.Rect(0, 0, 2, 1))
	nrgba.Pix = []uint8{10, 20, 30, 0, 40, 50, 60, 128} // alpha dropped, straight colour kept
	g16 := image.NewGray16(image.Rect(0, 0, 2, 1))
	g16.SetGray16(0, 0, color.Gray16{Y: 0x1234})
	g16.SetGray16(1, 0, color.Gray16{Y: 0xff00})
	cases := []struct {
		name string
		img  image.Image
		want []uint8
	}{
		{"gray", gray, []uint8{0, 0, 0, 50, 50, 50, 100, 100, 100, 150, 150, 150, 200, 200, 200, 250, 250, 250}},
		{"nrgba", nrgba, []uint8{10, 20, 30, 40, 50, 60}},
		{"gray16", g16, []uint8{0x12, 0x12, 0x12, 0xff, 0xff, 0xff}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name+".png")
			writeFile(t, p, pngBytes(t, tc.img))
			got, err := DecodeImage(p, 0)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Pix, tc.want) {
				t.Fatalf("got %v want %v", got.Pix, tc.want)
			}
		})
	}
}

func TestDecodeJPEGClose(t *testing.T) {
	// JPEG is lossy: compare with the standard library's own decoding,
	// converted pixel by pixel with color.RGBAModel (tolerance 0: same maths).
	dir := t.TempDir()
	src := testPattern(33, 17)
	data := jpegBytes(t, src)
	p := filepath.Join(dir, "a.jpg")
	writeFile(t, p, data)
	got, err := DecodeImage(p, 0)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := jpeg.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	for y := 0; y < 17; y++ {
		for x := 0; x < 33; x++ {
			c := color.RGBAModel.Convert(ref.At(x, y)).(color.RGBA)
			o := got.Offset(x, y)
			if got.Pix[o] != c.R || got.Pix[o+1] != c.G || got.Pix[o+2] != c.B {
				t.Fatalf("pixel (%d,%d) = %v, want %v", x, y, got.Pix[o:o+3], c)
			}
		}
	}
}

// hugePNGHeader is a valid PNG signature and IHDR claiming w x h, with no
// image data: decoding it would fail, so only a header check can reject it
// as too large.
func hugePNGHeader(t testing.TB, w, h int) []byte {
	full := pngBytes(t, image.NewGray(image.Rect(0, 0, 1, 1)))
	hdr := append([]byte(nil), full[:33]...) // signature (8) + IHDR chunk (4+4+13+4)
	put32 := func(b []byte, v uint32) { b[0], b[1], b[2], b[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v) }
	put32(hdr[16:], uint32(w))
	put32(hdr[20:], uint32(h))
	// Fix the IHDR CRC so the header itself is valid.
	put32(hdr[29:], crc32IEEE(hdr[12:29]))
	return hdr
}

func crc32IEEE(b []byte) uint32 {
	crc := ^uint32(0)
	for _, c := range b {
		crc ^= uint32(c)
		for k := 0; k < 8; k++ {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0xedb88320
			} else {
				crc >>= 1
			}
		}
	}
	return ^crc
}

func TestDecodeErrors(t *testing.T) {
	dir := t.TempDir()
	good := jpegBytes(t, testPattern(40, 30))
	writeFile(t, filepath.Join(dir, "trunc.jpg"), good[:len(good)/2])
	writeFile(t, filepath.Join(dir, "noeoi.jpg"), good[:len(good)-2])
	bad := append([]byte(nil), good...)
	for i := len(bad) / 2; i < len(bad)/2+64; i++ {
		bad[i] = 0xff // markers in the middle of scan data
	}
	writeFile(t, filepath.Join(dir, "corrupt.jpg"), bad)
	writeFile(t, filepath.Join(dir, "text.jpg"), []byte("not an image at all"))
	writeFile(t, filepath.Join(dir, "huge.png"), hugePNGHeader(t, 100000, 100000))
	writeFile(t, filepath.Join(dir, "small.png"), pngBytes(t, image.NewGray(image.Rect(0, 0, 20, 10))))
	cases := []struct {
		name      string
		file      string
		maxPixels int
		kind      string
	}{
		{"missing", "nope.jpg", 0, KindImageMissing},
		{"truncated jpeg", "trunc.jpg", 0, KindImageCorrupt},
		{"jpeg without EOI", "noeoi.jpg", 0, KindImageCorrupt},
		{"not an image", "text.jpg", 0, KindImageFormat},
		{"huge header, no data", "huge.png", 0, KindImageTooLarge},
		{"over a small limit", "small.png", 199, KindImageTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeImage(filepath.Join(dir, tc.file), tc.maxPixels)
			var ie *ImageError
			if !errors.As(err, &ie) || ie.Kind != tc.kind {
				t.Fatalf("err %v, want kind %s", err, tc.kind)
			}
		})
	}
	if _, err := DecodeImage(filepath.Join(dir, "small.png"), 200); err != nil {
		t.Fatalf("exactly at the limit: %v", err)
	}
	// Corrupt scan data may or may not be detected by a JPEG decoder; it must
	// be an error or a full-size image, never a panic.
	if img, err := DecodeImage(filepath.Join(dir, "corrupt.jpg"), 0); err == nil && (img.W != 40 || img.H != 30) {
		t.Fatalf("corrupt JPEG decoded to %dx%d", img.W, img.H)
	}
}

// BenchmarkDecodeImageBCCD decodes one 640x480 BCCD JPEG to RGB.
func BenchmarkDecodeImageBCCD(b *testing.B) {
	p := filepath.Join(bccdRoot(b), "JPEGImages", "BloodImage_00000.jpg")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := DecodeImage(p, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStdJPEGDecodeBCCD is the standard library's decoding alone, for comparison.
func BenchmarkStdJPEGDecodeBCCD(b *testing.B) {
	data, err := os.ReadFile(filepath.Join(bccdRoot(b), "JPEGImages", "BloodImage_00000.jpg"))
	if err != nil {
		b.Skip(err)
	}
	for i := 0; i < b.N; i++ {
		if _, err := jpeg.Decode(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}

// TestYCbCrFastPath compares the row converter with color.YCbCrToRGB for
// every subsampling ratio, on random planes (tolerance 0).
func TestYCbCrFastPath(t *testing.T) {
	ratios := []image.YCbCrSubsampleRatio{image.YCbCrSubsampleRatio444, image.YCbCrSubsampleRatio422,
		image.YCbCrSubsampleRatio420, image.YCbCrSubsampleRatio440, image.YCbCrSubsampleRatio411, image.YCbCrSubsampleRatio410}
	for _, r := range ratios {
		t.Run(r.String(), func(t *testing.T) {
			src := image.NewYCbCr(image.Rect(0, 0, 37, 23), r)
			seed := uint32(12345)
			next := func() uint8 { seed = seed*1664525 + 1013904223; return uint8(seed >> 24) }
			for i := range src.Y {
				src.Y[i] = next()
			}
			for i := range src.Cb {
				src.Cb[i], src.Cr[i] = next(), next()
			}
			got := FromStdImage(src)
			for y := 0; y < 23; y++ {
				for x := 0; x < 37; x++ {
					c := src.YCbCrAt(x, y)
					r, g, b := color.YCbCrToRGB(c.Y, c.Cb, c.Cr)
					o := got.Offset(x, y)
					if got.Pix[o] != r || got.Pix[o+1] != g || got.Pix[o+2] != b {
						t.Fatalf("(%d,%d): %v want %v %v %v", x, y, got.Pix[o:o+3], r, g, b)
					}
				}
			}
		})
	}
}

// BenchmarkYCbCrToRGB is the conversion alone on a decoded 640x480 BCCD
// image: rows (the fast path) against pixel by pixel (a sub-image whose
// bounds do not start at 0, which takes the general path).
func BenchmarkYCbCrToRGB(b *testing.B) {
	data, err := os.ReadFile(filepath.Join(bccdRoot(b), "JPEGImages", "BloodImage_00000.jpg"))
	if err != nil {
		b.Skip(err)
	}
	img, err := jpeg.Decode(bytes.NewReader(data))
	if err != nil {
		b.Fatal(err)
	}
	src := img.(*image.YCbCr)
	b.Run("rows", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			FromStdImage(src)
		}
	})
	sub := src.SubImage(image.Rect(2, 0, 640, 480))
	b.Run("pixels", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			FromStdImage(sub)
		}
	})
}

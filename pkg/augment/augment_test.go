package augment

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"yolodistill/pkg/box"
	"yolodistill/pkg/dataset"
)

func TestRNGDeterministicAndRanges(t *testing.T) {
	a, b := dataset.NewRNG(1, 2, 3), dataset.NewRNG(1, 2, 3)
	c := dataset.NewRNG(1, 2, 4)
	same := 0
	for i := 0; i < 1000; i++ {
		x, y, z := a.Uint64(), b.Uint64(), c.Uint64()
		if x != y {
			t.Fatalf("draw %d: same words gave %x and %x", i, x, y)
		}
		if x == z {
			same++
		}
	}
	if same > 0 {
		t.Errorf("different words gave %d equal draws of 1000", same)
	}
	r := dataset.NewRNG(7)
	sum := 0.0
	const n = 20000
	for i := 0; i < n; i++ {
		v := r.Beta(1.5, 1.5)
		if v < 0 || v > 1 {
			t.Fatalf("Beta out of [0,1]: %v", v)
		}
		sum += v
		if k := r.Intn(5); k < 0 || k >= 5 {
			t.Fatalf("Intn(5) = %d", k)
		}
	}
	if mean := sum / n; math.Abs(mean-0.5) > 0.01 {
		t.Errorf("Beta(1.5,1.5) mean = %v, want 0.5 +- 0.01", mean)
	}
	p := r.Perm(6)
	seen := map[int]bool{}
	for _, v := range p {
		seen[v] = true
	}
	if len(seen) != 6 {
		t.Errorf("Perm(6) = %v is not a permutation", p)
	}
}

// resizeRow resizes a 1-row grey signal with the given mode (R=G=B) and returns
// the red channel.
func resizeRow(src []float32, dst int, m Interp) []float32 {
	tp := makeTaps(len(src), dst, m)
	in := make([]float32, 3*len(src))
	for i, v := range src {
		in[3*i], in[3*i+1], in[3*i+2] = v, v, v
	}
	out := make([]float32, 3*dst)
	tp.hresample(out, in)
	r := make([]float32, dst)
	for i := range r {
		r[i] = out[3*i]
	}
	return r
}

func TestResizeTaps(t *testing.T) {
	cases := []struct {
		name string
		src  []float32
		dst  int
		m    Interp
		want []float32
		tol  float64
	}{
		{"nearest up x2", []float32{0, 10}, 4, InterpNearest, []float32{0, 0, 10, 10}, 0},
		{"nearest down x2", []float32{1, 2, 3, 4}, 2, InterpNearest, []float32{1, 3}, 0},
		{"linear up x2", []float32{0, 10}, 4, InterpLinear, []float32{0, 2.5, 7.5, 10}, 1e-6},
		{"linear down x2", []float32{0, 2, 4, 6}, 2, InterpLinear, []float32{1, 5}, 1e-6},
		{"area down x2", []float32{0, 2, 4, 6}, 2, InterpArea, []float32{1, 5}, 1e-6},
		{"area down x1.5", []float32{0, 3, 6}, 2, InterpArea, []float32{1, 5}, 1e-5},
		{"cubic identity", []float32{1, 5, 2, 8}, 4, InterpCubic, []float32{1, 5, 2, 8}, 1e-6},
		{"lanczos identity", []float32{1, 5, 2, 8}, 4, InterpLanczos4, []float32{1, 5, 2, 8}, 1e-5},
		{"cubic constant", []float32{7, 7, 7}, 8, InterpCubic, []float32{7, 7, 7, 7, 7, 7, 7, 7}, 1e-5},
		{"lanczos constant", []float32{7, 7, 7, 7, 7}, 3, InterpLanczos4, []float32{7, 7, 7}, 1e-5},
		{"area up x2", []float32{0, 10}, 4, InterpArea, []float32{0, 0, 10, 10}, 1e-6},
	}
	for _, tc := range cases {
		got := resizeRow(tc.src, tc.dst, tc.m)
		for i := range got {
			if math.Abs(float64(got[i]-tc.want[i])) > tc.tol {
				t.Errorf("%s: got %v, want %v (tol %g)", tc.name, got, tc.want, tc.tol)
				break
			}
		}
	}
}

func TestTapsSumToOne(t *testing.T) {
	for m := Interp(0); m < numInterps; m++ {
		for _, sz := range [][2]int{{640, 416}, {2000, 320}, {100, 608}, {333, 333}, {7, 608}} {
			tp := makeTaps(sz[0], sz[1], m)
			for o := 0; o < sz[1]; o++ {
				s := 0.0
				for j := 0; j < tp.k; j++ {
					s += float64(tp.w[o*tp.k+j])
				}
				if math.Abs(s-1) > 1e-5 {
					t.Fatalf("%v %v: output %d weights sum to %v", m, sz, o, s)
				}
			}
		}
	}
}

func tgt(x0, y0, x1, y1 float64) dataset.Target {
	return dataset.Target{Box: box.Box{X0: x0, Y0: y0, X1: x1, Y1: y1}, Label: 1, Score: 1}
}

func boxNear(a, b box.Box, tol float64) bool {
	return math.Abs(a.X0-b.X0) <= tol && math.Abs(a.Y0-b.Y0) <= tol && math.Abs(a.X1-b.X1) <= tol && math.Abs(a.Y1-b.Y1) <= tol
}

func TestBoxTransforms(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxBoxes = 0
	img := Geometry{W: 100, H: 50, Targets: []dataset.Target{tgt(10, 5, 30, 25), tgt(60, 10, 90, 40)}}
	cases := []struct {
		name string
		rec  Record
		want []box.Box
	}{
		{"resize only", Record{Partner: -1, Size: 200},
			[]box.Box{{X0: 20, Y0: 20, X1: 60, Y1: 100}, {X0: 120, Y0: 40, X1: 180, Y1: 160}}},
		{"flip", Record{Partner: -1, Flip: true, Size: 100},
			[]box.Box{{X0: 70, Y0: 10, X1: 90, Y1: 50}, {X0: 10, Y0: 20, X1: 40, Y1: 80}}},
		{"expand", Record{Partner: -1, Expand: true, ExpandX: 100, ExpandY: 50, ExpandW: 200, ExpandH: 100, Size: 200},
			[]box.Box{{X0: 110, Y0: 110, X1: 130, Y1: 150}, {X0: 160, Y0: 120, X1: 190, Y1: 180}}},
		// Crop [20,70) x [0,50): box 1 centre (20,15) inside -> clipped to [20,30) -> [0,10);
		// box 2 centre (75,25) outside -> dropped.
		{"crop keeps centre inside", Record{Partner: -1, Crop: true, CropX: 20, CropY: 0, CropW: 50, CropH: 50, Size: 50},
			[]box.Box{{X0: 0, Y0: 5, X1: 10, Y1: 25}}},
		// Crop [0,20): box 1 centre x=20 is on the half-open edge -> dropped; nothing left.
		{"crop centre on edge dropped", Record{Partner: -1, Crop: true, CropX: 0, CropY: 0, CropW: 20, CropH: 50, Size: 50},
			nil},
		{"expand crop flip", Record{Partner: -1, Expand: true, ExpandX: 10, ExpandY: 0, ExpandW: 120, ExpandH: 60,
			Crop: true, CropX: 10, CropY: 0, CropW: 100, CropH: 50, Flip: true, Size: 100},
			[]box.Box{{X0: 70, Y0: 10, X1: 90, Y1: 50}, {X0: 10, Y0: 20, X1: 40, Y1: 80}}},
	}
	for _, tc := range cases {
		got, err := cfg.Geometry(&tc.rec, img, nil)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if len(got) != len(tc.want) {
			t.Errorf("%s: %d boxes %v, want %v", tc.name, len(got), got, tc.want)
			continue
		}
		for i := range got {
			if !boxNear(got[i].Box, tc.want[i], 1e-9) {
				t.Errorf("%s: box %d = %v, want %v", tc.name, i, got[i].Box, tc.want[i])
			}
		}
	}
	// Mixup: canvas is the larger size, scores f and 1-f.
	partner := Geometry{W: 120, H: 40, Targets: []dataset.Target{tgt(0, 0, 60, 20)}}
	rec := Record{Partner: 9, MixFactor: 0.25, Size: 240}
	got, err := cfg.Geometry(&rec, img, &partner)
	if err != nil {
		t.Fatal(err)
	}
	wantScores := []float64{0.25, 0.25, 0.75}
	if len(got) != 3 {
		t.Fatalf("mixup: %d targets, want 3", len(got))
	}
	for i, s := range wantScores {
		if got[i].Score != s {
			t.Errorf("mixup: target %d score %v, want %v", i, got[i].Score, s)
		}
	}
	if want := (box.Box{X0: 0, Y0: 0, X1: 120, Y1: 96}); !boxNear(got[2].Box, want, 1e-9) {
		t.Errorf("mixup: partner box %v, want %v (canvas 120x50 -> 240x240)", got[2].Box, want)
	}
	// A record that does not fit is an error, not a panic.
	bad := Record{Partner: -1, Crop: true, CropX: 90, CropW: 20, CropH: 10, Size: 32}
	if _, err := cfg.Geometry(&bad, img, nil); err == nil {
		t.Error("crop outside the image: no error")
	}
}

func TestRecordBinaryRoundTrip(t *testing.T) {
	cfg := DefaultConfig()
	r := dataset.NewRNG(42)
	img := Geometry{W: 640, H: 480, Targets: []dataset.Target{tgt(100, 100, 200, 220), tgt(300, 50, 330, 90)}}
	partner := Geometry{W: 500, H: 375, Targets: []dataset.Target{tgt(10, 10, 50, 50)}}
	for i := 0; i < 200; i++ {
		size, interp := cfg.DrawShape(r)
		rec := cfg.Draw(r, int64(i), img, int64(i+1), &partner, size, interp)
		b, err := rec.MarshalBinary()
		if err != nil || len(b) != RecordSize {
			t.Fatalf("marshal: %d bytes, %v", len(b), err)
		}
		var back Record
		if err := back.UnmarshalBinary(b); err != nil {
			t.Fatalf("unmarshal: %v", err)
		}
		if back != rec {
			t.Fatalf("round trip:\n got %+v\nwant %+v", back, rec)
		}
	}
	rec := EvalRecord(3, 416, InterpCubic)
	b, _ := rec.MarshalBinary()
	for _, tc := range []struct {
		name string
		mod  func([]byte) []byte
	}{
		{"short", func(b []byte) []byte { return b[:50] }},
		{"version", func(b []byte) []byte { b[2] = 9; return b }},
		{"magic", func(b []byte) []byte { b[0] = 'X'; return b }},
		{"interp", func(b []byte) []byte { b[100] = 7; return b }},
		{"order", func(b []byte) []byte { b[28], b[29] = 1, 1; return b }},
	} {
		var x Record
		if err := x.UnmarshalBinary(tc.mod(append([]byte(nil), b...))); err == nil {
			t.Errorf("%s: corrupted record accepted", tc.name)
		}
	}
}

// replayFixture builds two deterministic pseudo-random images with boxes.
func replayFixture() (a, b *dataset.Image, ta, tb []dataset.Target) {
	r := dataset.NewRNG(99)
	a, b = dataset.NewImage(97, 61), dataset.NewImage(80, 90)
	for i := range a.Pix {
		a.Pix[i] = uint8(r.Intn(256))
	}
	for i := range b.Pix {
		b.Pix[i] = uint8(r.Intn(256))
	}
	ta = []dataset.Target{tgt(5, 5, 40, 30), tgt(50, 20, 90, 60), tgt(20, 40, 30, 50)}
	tb = []dataset.Target{tgt(10, 10, 70, 80)}
	return
}

// replayDigest draws n records with every operation on, applies them and
// hashes the records, pixels and boxes.
func replayDigest(t testing.TB, n int) string {
	cfg := DefaultConfig()
	a, b, ta, tb := replayFixture()
	h := sha256.New()
	r := dataset.NewRNG(2024)
	for i := 0; i < n; i++ {
		size := 32 + 8*r.Intn(6)
		interp := Interp(i % numInterps)
		rec := cfg.Draw(r, 0, Geometry{a.W, a.H, ta}, 1, &Geometry{b.W, b.H, tb}, size, interp)
		v, err := cfg.Apply(&rec, a, ta, b, tb, nil)
		if err != nil {
			t.Fatalf("apply %d: %v", i, err)
		}
		rb, _ := rec.MarshalBinary()
		h.Write(rb)
		binary.Write(h, binary.LittleEndian, v.Image)
		for _, tg := range v.Targets {
			binary.Write(h, binary.LittleEndian, [5]float64{tg.Box.X0, tg.Box.Y0, tg.Box.X1, tg.Box.Y1, tg.Score})
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

func TestReplayHelperProcess(t *testing.T) {
	if os.Getenv("DATASET_REPLAY_HELPER") != "1" {
		t.Skip("helper for TestReplayAcrossProcesses")
	}
	os.Stdout.WriteString("DIGEST " + replayDigest(t, 40) + "\n")
}

func TestReplayAcrossProcesses(t *testing.T) {
	d1 := replayDigest(t, 40)
	d2 := replayDigest(t, 40)
	if d1 != d2 {
		t.Fatalf("same records in one process: %s vs %s", d1, d2)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestReplayHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "DATASET_REPLAY_HELPER=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper process: %v\n%s", err, out)
	}
	i := strings.Index(string(out), "DIGEST ")
	if i < 0 {
		t.Fatalf("helper printed no digest:\n%s", out)
	}
	d3 := strings.TrimSpace(strings.SplitN(string(out[i+7:]), "\n", 2)[0])
	if d3 != d1 {
		t.Fatalf("second process digest %s, this process %s", d3, d1)
	}
}

// TestApplyRecordTwiceAndFromBytes checks that a record decoded from its bytes
// rebuilds the identical view, and that Apply leaves its inputs alone.
func TestApplyRecordTwiceAndFromBytes(t *testing.T) {
	cfg := DefaultConfig()
	a, b, ta, tb := replayFixture()
	before := append([]uint8(nil), a.Pix...)
	r := dataset.NewRNG(5)
	for i := 0; i < 20; i++ {
		rec := cfg.Draw(r, 0, Geometry{a.W, a.H, ta}, 1, &Geometry{b.W, b.H, tb}, 64, Interp(i%numInterps))
		v1, err := cfg.Apply(&rec, a, ta, b, tb, nil)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := rec.MarshalBinary()
		var back Record
		if err := back.UnmarshalBinary(raw); err != nil {
			t.Fatal(err)
		}
		v2, err := cfg.Apply(&back, a, ta, b, tb, make([]float32, 3*64*64))
		if err != nil {
			t.Fatal(err)
		}
		for k := range v1.Image {
			if math.Float32bits(v1.Image[k]) != math.Float32bits(v2.Image[k]) {
				t.Fatalf("view %d: pixel %d differs: %v vs %v", i, k, v1.Image[k], v2.Image[k])
			}
		}
		if len(v1.Targets) != len(v2.Targets) {
			t.Fatalf("view %d: target count differs", i)
		}
		for k := range v1.Targets {
			if v1.Targets[k] != v2.Targets[k] {
				t.Fatalf("view %d: target %d differs", i, k)
			}
		}
	}
	for k := range before {
		if before[k] != a.Pix[k] {
			t.Fatal("Apply modified its input image")
		}
	}
}

// TestPixelsFollowBoxes draws a bright rectangle on a dark image and checks
// that after expand, crop, flip and resize the bright pixels sit where the
// transformed box says.
func TestPixelsFollowBoxes(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Mean, cfg.Std = [3]float64{}, [3]float64{1, 1, 1}
	cfg.ExpandFill = [3]float32{0, 0, 0}
	im := dataset.NewImage(120, 80)
	bx := tgt(30, 20, 70, 50)
	for y := 20; y < 50; y++ {
		for x := 30; x < 70; x++ {
			o := (y*120 + x) * 3
			im.Pix[o], im.Pix[o+1], im.Pix[o+2] = 255, 255, 255
		}
	}
	r := dataset.NewRNG(11)
	checked := 0
	for i := 0; i < 60; i++ {
		rec := cfg.Draw(r, 0, Geometry{120, 80, []dataset.Target{bx}}, -1, nil, 96, InterpNearest)
		rec.ColorOn = [4]bool{}
		if i%2 == 1 { // a neutral colour op: exercises the float-image path
			rec.ColorOn[ColorContrast], rec.ColorDelta[ColorContrast] = true, 1
		}
		v, err := cfg.Apply(&rec, im, []dataset.Target{bx}, nil, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(v.Targets) != 1 {
			continue
		}
		// Bounding box of bright pixels (red plane).
		x0, y0, x1, y1 := 96, 96, -1, -1
		for y := 0; y < 96; y++ {
			for x := 0; x < 96; x++ {
				if v.Image[y*96+x] > 0.5 {
					x0, y0, x1, y1 = min(x0, x), min(y0, y), max(x1, x+1), max(y1, y+1)
				}
			}
		}
		want := v.Targets[0].Box
		for _, d := range []float64{float64(x0) - want.X0, float64(y0) - want.Y0, float64(x1) - want.X1, float64(y1) - want.Y1} {
			if math.Abs(d) > 1.5 {
				t.Fatalf("view %d (%+v): bright pixels [%d,%d)x[%d,%d), box %v", i, rec, x0, x1, y0, y1, want)
			}
		}
		checked++
	}
	if checked < 20 {
		t.Fatalf("only %d views kept the box", checked)
	}
}

func TestColorDistortHandCases(t *testing.T) {
	im := &fimage{w: 1, h: 1, pix: []float32{100, 50, 200}}
	cases := []struct {
		name string
		op   int
		d    float64
		want [3]float32
		tol  float64
	}{
		{"brightness", ColorBrightness, 1.5, [3]float32{101.5, 51.5, 201.5}, 1e-5},
		{"contrast", ColorContrast, 0.5, [3]float32{50, 25, 100}, 1e-5},
		// gray = .299*100 + .587*50 + .114*200 = 82.05; d=0 -> all gray.
		{"saturation 0", ColorSaturation, 0, [3]float32{82.05, 82.05, 82.05}, 1e-3},
		{"saturation 1", ColorSaturation, 1, [3]float32{100, 50, 200}, 1e-4},
		// Hue rotation by a multiple of 2*pi is the identity (up to the YIQ matrices' precision).
		{"hue 2", ColorHue, 2, [3]float32{100, 50, 200}, 0.5},
	}
	for _, tc := range cases {
		c := &fimage{w: 1, h: 1, pix: append([]float32(nil), im.pix...)}
		rec := Record{ColorOrder: [4]uint8{0, 1, 2, 3}}
		rec.ColorOn[tc.op], rec.ColorDelta[tc.op] = true, tc.d
		colorDistort(c, &rec)
		for k := 0; k < 3; k++ {
			if math.Abs(float64(c.pix[k]-tc.want[k])) > tc.tol {
				t.Errorf("%s: got %v, want %v", tc.name, c.pix, tc.want)
				break
			}
		}
	}
}

// TestResizeAgainstTorch compares a 2-D resize (through the same taps and
// passes as Apply) with PyTorch's F.interpolate, which samples as OpenCV does
// for these modes (testdata/dataset/gen_resize.py).
func TestResizeAgainstTorch(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "testdata", "dataset", "resize_ref.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		SrcH  int       `json:"src_h"`
		SrcW  int       `json:"src_w"`
		Src   []float64 `json:"src"`
		Cases []struct {
			Mode string    `json:"mode"`
			H    int       `json:"h"`
			W    int       `json:"w"`
			Out  []float64 `json:"out"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(raw, &ref); err != nil {
		t.Fatal(err)
	}
	modes := map[string]Interp{"nearest": InterpNearest, "bilinear": InterpLinear, "bicubic": InterpCubic, "area": InterpArea}
	img := dataset.NewImage(ref.SrcW, ref.SrcH)
	for i, v := range ref.Src {
		img.Pix[3*i], img.Pix[3*i+1], img.Pix[3*i+2] = uint8(v), uint8(v), uint8(v)
	}
	for _, tc := range ref.Cases {
		xt := makeTaps(ref.SrcW, tc.W, modes[tc.Mode])
		yt := makeTaps(ref.SrcH, tc.H, modes[tc.Mode])
		// Horizontal pass per source row, then vertical, as resampler.run does.
		rows := make([][]float32, ref.SrcH)
		for y := 0; y < ref.SrcH; y++ {
			in := make([]float32, 3*ref.SrcW)
			for x := range in {
				in[x] = float32(img.Pix[y*ref.SrcW*3+x])
			}
			rows[y] = make([]float32, 3*tc.W)
			xt.hresample(rows[y], in)
		}
		const tol = 2e-3
		for oy := 0; oy < tc.H; oy++ {
			acc := make([]float32, 3*tc.W)
			for j := 0; j < yt.k; j++ {
				axpy(acc, yt.w[oy*yt.k+j], rows[yt.idx[oy*yt.k+j]])
			}
			for ox := 0; ox < tc.W; ox++ {
				want := tc.Out[oy*tc.W+ox]
				if got := float64(acc[3*ox]); math.Abs(got-want) > tol*math.Max(1, math.Abs(want)) {
					t.Fatalf("%s %dx%d: (%d,%d) = %v, torch %v", tc.Mode, tc.W, tc.H, ox, oy, got, want)
				}
			}
		}
	}
}

// TestDrawStatistics checks the draw rates against PaddleDetection's settings:
// flip, expand and each colour operation about half the time, every size and
// interpolation drawn, mixup factors centred on 0.5, crops that keep boxes.
func TestDrawStatistics(t *testing.T) {
	cfg := DefaultConfig()
	r := dataset.NewRNG(123)
	img := Geometry{W: 640, H: 480, Targets: []dataset.Target{tgt(100, 100, 200, 220), tgt(300, 50, 330, 90), tgt(500, 300, 600, 470)}}
	partner := Geometry{W: 500, H: 375, Targets: []dataset.Target{tgt(10, 10, 50, 50)}}
	const n = 4000
	var flips, expands, crops, mixes int
	var colour [4]int
	var mixSum float64
	sizes, interps := map[int]int{}, map[Interp]int{}
	for i := 0; i < n; i++ {
		size, interp := cfg.DrawShape(r)
		sizes[size]++
		interps[interp]++
		rec := cfg.Draw(r, 0, img, 1, &partner, size, interp)
		if rec.Flip {
			flips++
		}
		if rec.Expand {
			expands++
			if rec.ExpandW > 4*640 || rec.ExpandH > 4*480 {
				t.Fatalf("expand beyond ratio 4: %+v", rec)
			}
		}
		if rec.Crop {
			crops++
			g, err := cfg.Geometry(&rec, img, &partner)
			if err != nil || len(g) == 0 {
				t.Fatalf("a drawn crop keeps no box: %+v (%v)", rec, err)
			}
		}
		if rec.Partner >= 0 {
			mixes++
			mixSum += rec.MixFactor
		}
		for op := range colour {
			if rec.ColorOn[op] {
				colour[op]++
				lo, hi := cfg.ColorRange[op][0], cfg.ColorRange[op][1]
				if rec.ColorDelta[op] < lo || rec.ColorDelta[op] >= hi {
					t.Fatalf("colour op %d delta %v outside [%v, %v)", op, rec.ColorDelta[op], lo, hi)
				}
			}
		}
	}
	rates := []struct {
		name     string
		got      float64
		lo, high float64
	}{
		{"flip", float64(flips) / n, 0.46, 0.54},
		{"expand", float64(expands) / n, 0.46, 0.54},
		{"brightness", float64(colour[0]) / n, 0.46, 0.54},
		{"contrast", float64(colour[1]) / n, 0.46, 0.54},
		{"saturation", float64(colour[2]) / n, 0.46, 0.54},
		{"hue", float64(colour[3]) / n, 0.46, 0.54},
		// "no crop" is one of 7 shuffled choices; a threshold no attempt can
		// reach (0.7, 0.9 with these small boxes) passes to the next choice,
		// so with k reachable thresholds (1 to 3 here, fewer after a large
		// expand) the crop rate is k/(k+1): between 1/2 and 3/4.
		{"crop", float64(crops) / n, 0.55, 0.8},
		{"mixup", float64(mixes) / n, 0.99, 1.0},
		{"mixup factor mean", mixSum / float64(mixes), 0.48, 0.52},
	}
	for _, rt := range rates {
		if rt.got < rt.lo || rt.got > rt.high {
			t.Errorf("%s rate %.3f outside [%.2f, %.2f]", rt.name, rt.got, rt.lo, rt.high)
		}
	}
	if len(sizes) != 10 || len(interps) != 5 {
		t.Errorf("drew %d sizes and %d interpolations, want 10 and 5", len(sizes), len(interps))
	}
}

package decode

import (
	"encoding/json"
	"math"
	"os"
	"testing"

	"yolodistill/pkg/box"
)

// outputs returns the three outputs of a batch of one at input in, every
// objectness and class logit at -20 (nothing detected), other logits 0.
func outputs(C, in int) (outs [][]float32, shapes [][4]int) {
	for _, s := range []int{32, 16, 8} {
		g := in / s
		sh := [4]int{1, 3 * (5 + C), g, g}
		o := make([]float32, 3*(5+C)*g*g)
		for a := 0; a < 3; a++ {
			for ch := 4; ch < 5+C; ch++ {
				for p := 0; p < g*g; p++ {
					o[(a*(5+C)+ch)*g*g+p] = -20
				}
			}
		}
		outs, shapes = append(outs, o), append(shapes, sh)
	}
	return
}

// set writes logit v of channel ch of anchor a at cell (row k, column l) of output s.
func set(outs [][]float32, shapes [][4]int, C, s, a, ch, k, l int, v float32) {
	g := shapes[s][3]
	outs[s][(a*(5+C)+ch)*g*g+k*g+l] = v
}

func near(a, b box.Box, tol float64) bool {
	return math.Abs(a.X0-b.X0) <= tol && math.Abs(a.Y0-b.Y0) <= tol && math.Abs(a.X1-b.X1) <= tol && math.Abs(a.Y1-b.Y1) <= tol
}

func sig(v float64) float64 { return 1 / (1 + math.Exp(-v)) }

// TestOneCell: one confident prediction of output 0 (stride 32), anchor slot
// 1 (anchor 7, 156x198), cell row 5 column 3, centred (x = y = 0), anchor size
// (w = h = 0), class 1, at input 320.
func TestOneCell(t *testing.T) {
	const C, in = 3, 320
	// input box: centre (3.5*32, 5.5*32) = (112, 176), size 156x198
	inBox := box.Box{X0: 112 - 78, Y0: 176 - 99, X1: 112 + 78, Y1: 176 + 99}
	cases := []struct {
		name  string
		pl    Placement
		paddl bool
		want  box.Box
	}{
		{"identity", Stretch(320, 320, in, in), false, inBox},
		{"stretch 640x480", Stretch(640, 480, in, in), false, box.Box{X0: 34 * 2, Y0: 77 * 1.5, X1: 190 * 2, Y1: 275 * 1.5}},
		// letterbox of 640x480 into 320: scale 0.5, 40 px bars above and below
		{"letterbox", Placement{OrigW: 640, OrigH: 480, ScaleX: 0.5, ScaleY: 0.5, PadY: 40}, false,
			box.Box{X0: 34 * 2, Y0: (77 - 40) * 2, X1: 190 * 2, Y1: (275 - 40) * 2}},
		// a 300x200 image pasted at the input's top-left corner: the box's bottom
		// (275) is clipped; continuous [0, H] vs Paddle's [0, H-1] inclusive, +1
		{"clip", Placement{OrigW: 300, OrigH: 200, ScaleX: 1, ScaleY: 1}, false, box.Box{X0: 34, Y0: 77, X1: 190, Y1: 200}},
		{"clip paddle", Placement{OrigW: 300, OrigH: 200, ScaleX: 1, ScaleY: 1}, true, box.Box{X0: 34, Y0: 77, X1: 191, Y1: 200}},
	}
	for _, tc := range cases {
		outs, shapes := outputs(C, in)
		set(outs, shapes, C, 0, 1, 4, 5, 3, 5)     // obj
		set(outs, shapes, C, 0, 1, 5+1, 5, 3, 5)   // class 1
		set(outs, shapes, C, 0, 1, 5+0, 5, 3, -2)  // class 0: conf*sig(-2) = 0.118 > 0.01
		set(outs, shapes, C, 0, 1, 5+2, 5, 3, -10) // class 2: below the threshold
		cfg := DefaultConfig(C)
		cfg.PaddlePixels = tc.paddl
		d, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		dets, err := d.Detect(outs, shapes, 0, in, in, tc.pl)
		if err != nil {
			t.Fatal(err)
		}
		if len(dets) != 2 {
			t.Fatalf("%s: %d detections, want 2 (classes 1 and 0): %+v", tc.name, len(dets), dets)
		}
		if dets[0].Label != 1 || math.Abs(dets[0].Score-sig(5)*sig(5)) > 1e-9 {
			t.Errorf("%s: first detection label %d score %v, want 1 %v", tc.name, dets[0].Label, dets[0].Score, sig(5)*sig(5))
		}
		if dets[1].Label != 0 || math.Abs(dets[1].Score-sig(5)*sig(-2)) > 1e-9 {
			t.Errorf("%s: second detection label %d score %v, want 0 %v", tc.name, dets[1].Label, dets[1].Score, sig(5)*sig(-2))
		}
		if !near(dets[0].Box, tc.want, 1e-6) {
			t.Errorf("%s: box %+v, want %+v", tc.name, dets[0].Box, tc.want)
		}
	}
}

// TestNMS: two overlapping predictions of one class keep the better one; a
// third of another class survives; an obj below conf_thresh is dropped.
func TestNMS(t *testing.T) {
	const C, in = 2, 64
	outs, shapes := outputs(C, in)
	// output 2 (stride 8, 8x8 grid), anchor slot 0 (10x13): cells (3,3) and (3,4)
	// with w,h logits making boxes ~40 px wide: neighbours overlap heavily.
	for _, l := range []int{3, 4} {
		set(outs, shapes, C, 2, 0, 2, 3, l, float32(math.Log(4)))
		set(outs, shapes, C, 2, 0, 3, 3, l, float32(math.Log(3)))
		set(outs, shapes, C, 2, 0, 4, 3, l, 4)
	}
	set(outs, shapes, C, 2, 0, 5+0, 3, 3, 3) // class 0, best
	set(outs, shapes, C, 2, 0, 5+0, 3, 4, 2) // class 0, suppressed
	set(outs, shapes, C, 2, 0, 5+1, 3, 4, 1) // class 1: kept
	// an obj of sigmoid(-5) = 0.0067 < conf_thresh 0.01 with a sure class: dropped
	set(outs, shapes, C, 1, 0, 4, 1, 1, -5)
	set(outs, shapes, C, 1, 0, 5, 1, 1, 20)
	d, err := New(DefaultConfig(C))
	if err != nil {
		t.Fatal(err)
	}
	cand, err := d.Candidates(nil, outs, shapes, 0, in, in, Stretch(in, in, in, in))
	if err != nil {
		t.Fatal(err)
	}
	// (3,3) class 0, (3,4) classes 0 and 1; (3,3) class 1 scores
	// sigmoid(4)*sigmoid(-20) < 0.01
	if len(cand) != 3 {
		t.Fatalf("%d candidates, want 3: %+v", len(cand), cand)
	}
	dets, err := d.Detect(outs, shapes, 0, in, in, Stretch(in, in, in, in))
	if err != nil {
		t.Fatal(err)
	}
	type lk struct {
		label int
		score float64
	}
	// the class-0 box at (3,4) overlaps the better one at (3,3) (IoU 2/3): suppressed
	want := []lk{{0, sig(4) * sig(3)}, {1, sig(4) * sig(1)}}
	if len(dets) != len(want) {
		t.Fatalf("%d detections, want %d: %+v", len(dets), len(want), dets)
	}
	for k, w := range want {
		if dets[k].Label != w.label || math.Abs(dets[k].Score-w.score) > 1e-9 {
			t.Errorf("detection %d: label %d score %v, want %d %v", k, dets[k].Label, dets[k].Score, w.label, w.score)
		}
	}
}

func TestErrors(t *testing.T) {
	outs, shapes := outputs(3, 64)
	d, err := New(DefaultConfig(3))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Detect(outs, shapes, 0, 96, 96, Stretch(10, 10, 96, 96)); err == nil {
		t.Error("wrong input size: no error")
	}
	if _, err := d.Detect(outs, shapes, 1, 64, 64, Stretch(10, 10, 64, 64)); err == nil {
		t.Error("item out of range: no error")
	}
	if _, err := d.Detect(outs, shapes, 0, 64, 64, Placement{}); err == nil {
		t.Error("empty placement: no error")
	}
	if _, err := New(Config{NumClasses: 3}); err == nil {
		t.Error("no masks: no error")
	}
}

// TestReference compares with an independent numpy implementation of Paddle's
// yolo_box + multiclass_nms (testdata/yololoss/gen_decode_reference.py), in
// the PaddlePixels convention with a stretch placement.
func TestReference(t *testing.T) {
	const file = "../../../testdata/yololoss/decode_reference.json"
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	var ref struct {
		Cases []struct {
			Name       string
			NumClasses int `json:"num_classes"`
			Input      int
			Seed       uint64
			Amp        float64
			OrigW      int `json:"orig_w"`
			OrigH      int `json:"orig_h"`
			Shapes     [][4]int
			Candidates int
			Dets       [][6]float64
		}
	}
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if len(ref.Cases) == 0 {
		t.Fatalf("%s: no cases", file)
	}
	for _, rc := range ref.Cases {
		t.Run(rc.Name, func(t *testing.T) {
			var outs [][]float32
			state := rc.Seed
			for _, sh := range rc.Shapes {
				o := make([]float32, sh[0]*sh[1]*sh[2]*sh[3])
				for k := range o {
					state = state*6364136223846793005 + 1442695040888963407
					o[k] = float32((float64(state>>40)/float64(1<<24)*2 - 1) * rc.Amp)
				}
				outs = append(outs, o)
			}
			cfg := DefaultConfig(rc.NumClasses)
			cfg.PaddlePixels = true
			d, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			pl := Stretch(rc.OrigW, rc.OrigH, rc.Input, rc.Input)
			cand, err := d.Candidates(nil, outs, rc.Shapes, 0, rc.Input, rc.Input, pl)
			if err != nil {
				t.Fatal(err)
			}
			if len(cand) != rc.Candidates {
				t.Errorf("%d candidates, want %d", len(cand), rc.Candidates)
			}
			dets, err := d.Detect(outs, rc.Shapes, 0, rc.Input, rc.Input, pl)
			if err != nil {
				t.Fatal(err)
			}
			if len(dets) != len(rc.Dets) {
				t.Fatalf("%d detections, want %d", len(dets), len(rc.Dets))
			}
			for k, w := range rc.Dets {
				g := dets[k]
				wb := box.Box{X0: w[0], Y0: w[1], X1: w[2], Y1: w[3]}
				if g.Label != int(w[5]) || math.Abs(g.Score-w[4]) > 1e-6*w[4] || !near(g.Box, wb, 1e-4) {
					t.Errorf("detection %d: %+v, want label %d score %v box %+v", k, g, int(w[5]), w[4], wb)
				}
			}
		})
	}
}

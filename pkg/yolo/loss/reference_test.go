package loss

import (
	"encoding/json"
	"math"
	"os"
	"testing"

	"yolodistill/pkg/anchor"
)

// refFile is written by testdata/yololoss/gen_reference.py (PyTorch, float64,
// autograd), an independent implementation of PaddleDetection's loss.
const refFile = "../../../testdata/yololoss/reference.json"

type refCase struct {
	Name         string      `json:"name"`
	Path         string      `json:"path"`
	NumClasses   int         `json:"num_classes"`
	Input        int         `json:"input"`
	Seed         uint64      `json:"seed"`
	Amp          float64     `json:"amp"`
	Shapes       [][4]int    `json:"shapes"`
	Overrides    [][]float64 `json:"overrides"` // [scale, flat index, value]
	IgnoreThresh float64     `json:"ignore_thresh"`
	LabelSmooth  bool        `json:"label_smooth"`
	SmoothCap    float64     `json:"smooth_cap"`
	ScaleXY      float64     `json:"scale_xy"`
	GTs          [][][6]float64
	RawGTs       json.RawMessage    `json:"gts"`
	Parts        map[string]float64 `json:"parts"`
	Grads        []struct {
		Idx []int     `json:"idx"`
		Val []float64 `json:"val"`
	} `json:"grads"`
}

type refFileT struct {
	Anchors []anchor.Anchor `json:"anchors"`
	Masks   [][]int         `json:"masks"`
	Strides []int           `json:"strides"`
	Cases   []refCase       `json:"cases"`
}

// lcgFill is the generator of gen_reference.py: values uniform in [-amp, amp),
// exact in float32.
func lcgFill(dst []float32, state uint64, amp float64) uint64 {
	for i := range dst {
		state = state*6364136223846793005 + 1442695040888963407
		u := float64(state>>40) / float64(1<<24)
		dst[i] = float32((u*2 - 1) * amp)
	}
	return state
}

func loadRef(t *testing.T) refFileT {
	t.Helper()
	b, err := os.ReadFile(refFile)
	if err != nil {
		t.Fatalf("%s: %v", refFile, err)
	}
	var r refFileT
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("%s: %v", refFile, err)
	}
	for k := range r.Cases {
		if err := json.Unmarshal(r.Cases[k].RawGTs, &r.Cases[k].GTs); err != nil {
			t.Fatalf("%s: case %s gts: %v", refFile, r.Cases[k].Name, err)
		}
	}
	return r
}

func (rc *refCase) inputs() (outs [][]float32, gts [][]GT) {
	state := rc.Seed
	for _, sh := range rc.Shapes {
		o := make([]float32, sh[0]*sh[1]*sh[2]*sh[3])
		state = lcgFill(o, state, rc.Amp)
		outs = append(outs, o)
	}
	for _, ov := range rc.Overrides {
		outs[int(ov[0])][int(ov[1])] = float32(ov[2])
	}
	for _, img := range rc.GTs {
		var l []GT
		for _, b := range img {
			l = append(l, GT{CX: float32(b[0]), CY: float32(b[1]), W: float32(b[2]), H: float32(b[3]), Label: int(b[4]), Score: float32(b[5])})
		}
		gts = append(gts, l)
	}
	return outs, gts
}

func (rc *refCase) config(r refFileT) Config {
	cfg := Config{
		Anchors: r.Anchors, Masks: r.Masks, Strides: r.Strides, NumClasses: rc.NumClasses,
		IgnoreThresh: float32(rc.IgnoreThresh), LabelSmooth: rc.LabelSmooth,
		SmoothCap: float32(rc.SmoothCap), ScaleXY: float32(rc.ScaleXY),
	}
	if rc.Path == "fine-grained" {
		cfg.Path = FineGrainedPath
	}
	return cfg
}

// TestReference matches loss parts and every gradient element against
// PyTorch within 1e-4 relative (plus 1e-6 absolute for entries near zero).
func TestReference(t *testing.T) {
	r := loadRef(t)
	if len(r.Cases) == 0 {
		t.Fatal("no reference cases")
	}
	const rel, abs = 1e-4, 1e-6
	for _, rc := range r.Cases {
		t.Run(rc.Name, func(t *testing.T) {
			crit, err := New(rc.config(r))
			if err != nil {
				t.Fatal(err)
			}
			outs, gts := rc.inputs()
			grads := make([][]float32, len(outs))
			for s := range outs {
				grads[s] = make([]float32, len(outs[s]))
				for k := range grads[s] {
					grads[s][k] = float32(math.NaN()) // must be overwritten
				}
			}
			p, err := crit.Forward(outs, rc.Shapes, gts, rc.Input, rc.Input, grads)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]float64{"xy": p.XY, "wh": p.WH, "obj": p.Obj, "cls": p.Cls, "total": p.Total}
			for k, want := range rc.Parts {
				if math.Abs(got[k]-want) > rel*math.Abs(want)+abs {
					t.Errorf("loss %s = %.8g, want %.8g", k, got[k], want)
				}
			}
			if p.Ignored == 0 {
				t.Errorf("no prediction ignored: the case does not exercise the ignore threshold")
			}
			for s := range outs {
				want := make([]float64, len(outs[s]))
				for k, idx := range rc.Grads[s].Idx {
					want[idx] = rc.Grads[s].Val[k]
				}
				bad := 0
				for k, w := range want {
					g := float64(grads[s][k])
					if !(math.Abs(g-w) <= rel*math.Abs(w)+abs) {
						if bad < 5 {
							t.Errorf("scale %d grad[%d] = %.8g, want %.8g", s, k, g, w)
						}
						bad++
					}
				}
				if bad > 0 {
					t.Errorf("scale %d: %d of %d gradient entries differ", s, bad, len(want))
				}
			}
		})
	}
}

// TestReferenceCoverage: the reference cases contain what they are meant to
// test: two GTs on one anchor and cell, a mixup score, a zero-size and a
// score-0 GT.
func TestReferenceCoverage(t *testing.T) {
	r := loadRef(t)
	for _, rc := range r.Cases {
		_, gts := rc.inputs()
		cfg := rc.config(r)
		m := Matcher{Anchors: cfg.Anchors, Masks: cfg.Masks, Strides: cfg.Strides, Path: cfg.Path}
		shared, mixup, zero, score0 := false, false, false, false
		for _, img := range gts {
			as, err := m.Assign(nil, img, rc.Input, rc.Input, rc.NumClasses)
			if err != nil {
				t.Fatal(err)
			}
			seen := map[[4]int]bool{}
			for _, a := range as {
				k := [4]int{a.Scale, a.Anchor, a.GI, a.GJ}
				if seen[k] {
					shared = true
				}
				seen[k] = true
			}
			for _, g := range img {
				mixup = mixup || (g.Score > 0 && g.Score < 1)
				zero = zero || g.W == 0
				score0 = score0 || g.Score == 0
			}
		}
		if !shared || !mixup || !zero || !score0 {
			t.Errorf("%s: shared cell %v, mixup score %v, zero-size GT %v, score-0 GT %v: want all", rc.Name, shared, mixup, zero, score0)
		}
	}
}

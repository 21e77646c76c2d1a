package distill

import (
	"encoding/json"
	"math"
	"os"
	"testing"
)

// refFile is written by testdata/distill/gen_reference.py (PyTorch, float64,
// autograd), an independent implementation of the PaddleDetection/PaddleSlim
// losses.
const refFile = "../../testdata/distill/reference.json"

type refCase struct {
	Name    string `json:"name"`
	Kind    string `json:"kind"`
	Pair    bool   `json:"pair"`
	Options struct {
		Weight             float64 `json:"weight"`
		NumClasses         int     `json:"num_classes"`
		StudentTemperature float64 `json:"student_temperature"`
		TeacherTemperature float64 `json:"teacher_temperature"`
		Temperature        float64 `json:"temperature"`
		Axis               int     `json:"axis"`
		Eps                float64 `json:"eps"`
	} `json:"options"`
	Student   [][]int            `json:"student"`
	Teacher   [][]int            `json:"teacher"`
	Seed      uint64             `json:"seed"`
	Amp       float64            `json:"amp"`
	Overrides [][4]any           `json:"overrides"` // [side "s"|"t", tensor, flat index, value]
	Loss      float64            `json:"loss"`
	Parts     map[string]float64 `json:"parts"`
	Grads     [][]float64        `json:"grads"`
}

// lcgFill is the generator of gen_reference.py: values uniform in [-amp, amp),
// rounded to float32.
func lcgFill(dst []float32, state uint64, amp float64) uint64 {
	for i := range dst {
		state = state*6364136223846793005 + 1442695040888963407
		u := float64(state>>40) / float64(1<<24)
		dst[i] = float32((u*2 - 1) * amp)
	}
	return state
}

func loadRef(t *testing.T) []refCase {
	t.Helper()
	b, err := os.ReadFile(refFile)
	if err != nil {
		t.Fatalf("%s: %v", refFile, err)
	}
	var r struct {
		Cases []refCase `json:"cases"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("%s: %v", refFile, err)
	}
	if len(r.Cases) == 0 {
		t.Fatalf("%s: no cases", refFile)
	}
	return r.Cases
}

// inputs regenerates the case's tensors: student, then teacher, from one LCG
// stream, then the overrides.
func (rc *refCase) inputs(t *testing.T) (student, teacher []Tensor) {
	state := rc.Seed
	mk := func(shapes [][]int) []Tensor {
		var out []Tensor
		for _, sh := range shapes {
			n := 1
			for _, d := range sh {
				n *= d
			}
			x := Tensor{Data: make([]float32, n), Shape: sh}
			state = lcgFill(x.Data, state, rc.Amp)
			out = append(out, x)
		}
		return out
	}
	student = mk(rc.Student)
	teacher = mk(rc.Teacher)
	for _, ov := range rc.Overrides {
		side, _ := ov[0].(string)
		k, i, v := int(ov[1].(float64)), int(ov[2].(float64)), ov[3].(float64)
		if float64(float32(v)) != v {
			t.Fatalf("%s: override value %v is not float32-exact", rc.Name, v)
		}
		if side == "s" {
			student[k].Data[i] = float32(v)
		} else {
			teacher[k].Data[i] = float32(v)
		}
	}
	return student, teacher
}

func (rc *refCase) options(workers int) Options {
	o := rc.Options
	return Options{Weight: o.Weight, NumClasses: o.NumClasses, StudentTemperature: o.StudentTemperature,
		TeacherTemperature: o.TeacherTemperature, Temperature: o.Temperature, Axis: o.Axis, Eps: o.Eps, Workers: workers}
}

func (rc *refCase) make(t *testing.T, workers int) Loss {
	t.Helper()
	var l Loss
	var err error
	if rc.Pair {
		l, err = NewPair(rc.Kind, rc.options(workers))
	} else {
		l, err = New(rc.Kind, rc.options(workers))
	}
	if err != nil {
		t.Fatalf("%s: %v", rc.Name, err)
	}
	return l
}

// relClose: |got-want| <= tol*max(|want|, floor).
func relClose(got, want, tol, floor float64) bool {
	return math.Abs(got-want) <= tol*math.Max(math.Abs(want), floor)
}

// TestReference: loss value and every gradient element match PyTorch within
// 1e-5 relative. For gradients the relative error is taken against
// max(|ref|, 1e-3*max|ref of that tensor|), so elements near zero are held
// to 1e-8 of the tensor's scale rather than to their own tiny magnitude.
func TestReference(t *testing.T) {
	const tol = 1e-5
	for _, rc := range loadRef(t) {
		for _, workers := range []int{1, 3} {
			rc := rc
			t.Run(rc.Name, func(t *testing.T) {
				l := rc.make(t, workers)
				if c, ok := l.(interface{ Close() error }); ok {
					defer c.Close()
				}
				student, teacher := rc.inputs(t)
				grads := make([][]float32, len(student))
				for i := range grads {
					grads[i] = make([]float32, len(student[i].Data))
				}
				got, err := l.Forward(student, teacher, grads)
				if err != nil {
					t.Fatal(err)
				}
				if !relClose(got, rc.Loss, tol, 0) {
					t.Errorf("workers %d: loss %.12g, reference %.12g (rel %.3g)", workers, got, rc.Loss, math.Abs(got-rc.Loss)/math.Abs(rc.Loss))
				}
				if rc.Parts != nil {
					fg, ok := l.(*FineGrained)
					if !ok {
						t.Fatalf("%s is %T, want *FineGrained", rc.Kind, l)
					}
					reg, cls, obj := fg.Parts()
					for _, p := range []struct {
						name     string
						got, ref float64
					}{{"reg", reg, rc.Parts["reg"]}, {"cls", cls, rc.Parts["cls"]}, {"obj", obj, rc.Parts["obj"]}} {
						if !relClose(p.got, p.ref, tol, 0) {
							t.Errorf("part %s %.12g, reference %.12g", p.name, p.got, p.ref)
						}
					}
				}
				worst := math.Abs(got-rc.Loss) / math.Abs(rc.Loss)
				if len(rc.Grads) != len(grads) {
					t.Fatalf("reference has %d gradients, loss has %d student tensors", len(rc.Grads), len(grads))
				}
				for k, ref := range rc.Grads {
					if len(ref) != len(grads[k]) {
						t.Fatalf("gradient %d: reference %d values, got %d", k, len(ref), len(grads[k]))
					}
					var scale float64
					for _, v := range ref {
						scale = math.Max(scale, math.Abs(v))
					}
					bad := 0
					for i, v := range ref {
						worst = math.Max(worst, math.Abs(float64(grads[k][i])-v)/math.Max(math.Abs(v), 1e-3*scale))
						if !relClose(float64(grads[k][i]), v, tol, 1e-3*scale) {
							if bad++; bad <= 5 {
								t.Errorf("workers %d: grad[%d][%d] = %.9g, reference %.9g", workers, k, i, grads[k][i], v)
							}
						}
					}
				}
				t.Logf("workers %d: loss %.10g, worst relative error %.2g", workers, got, worst)
			})
		}
	}
}

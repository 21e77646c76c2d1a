package distill

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// newLoss makes the pair loss (NewPair) or the head loss (New) of kind.
func newLoss(pair bool, kind string, o Options) (Loss, error) {
	if pair {
		return NewPair(kind, o)
	}
	return New(kind, o)
}

func TestKinds(t *testing.T) {
	if got, want := Kinds(), []string{"fine_grained", "fsp", "l2", "soft_label"}; !slices.Equal(got, want) {
		t.Errorf("Kinds() = %v, want %v", got, want)
	}
	if got, want := PairKinds(), []string{"cosine", "kl", "l1", "l2"}; !slices.Equal(got, want) {
		t.Errorf("PairKinds() = %v, want %v", got, want)
	}
	for _, tc := range []struct {
		name string
		pair bool
		kind string
		o    Options
		want string // error substring, "" for success
	}{
		{"unknown", false, "l3", Options{}, `unknown loss kind "l3" (known: fine_grained, fsp, l2, soft_label)`},
		{"unknown pair", true, "fsp", Options{}, `unknown pair loss kind "fsp" (known: cosine, kl, l1, l2)`},
		{"fine_grained no classes", false, "fine_grained", Options{}, "0 classes"},
		{"nan weight", false, "l2", Options{Weight: math.NaN()}, "weight NaN"},
		{"negative temperature", false, "soft_label", Options{TeacherTemperature: -1}, "temperature -1"},
		{"kl negative temperature", true, "kl", Options{Temperature: -2}, "temperature -2"},
		{"cosine negative eps", true, "cosine", Options{Eps: -1}, "eps -1"},
		{"l2", false, "l2", Options{}, ""},
		{"pair kl", true, "kl", Options{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := newLoss(tc.pair, tc.kind, tc.o)
			if tc.want == "" {
				if err != nil || l == nil || l.Name() != tc.kind {
					t.Fatalf("got %v, %v; want a %s loss", l, err, tc.kind)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if l != nil {
				t.Errorf("loss %v returned with the error", l)
			}
		})
	}
}

// scaled is a user loss: Weight * sum(s*t), to show Register at work.
type scaled struct{ w float64 }

func (s scaled) Name() string { return "dot" }
func (s scaled) Forward(student, teacher []Tensor, grads [][]float32) (float64, error) {
	var v float64
	for i, x := range student[0].Data {
		v += float64(x) * float64(teacher[0].Data[i])
		if grads != nil {
			grads[0][i] += float32(s.w) * teacher[0].Data[i]
		}
	}
	return s.w * v, nil
}

func TestRegister(t *testing.T) {
	if err := RegisterPair("dot_test", func(o Options) (Loss, error) { return scaled{o.Weight}, nil }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // leave the registry as other tests (and -count=N reruns) expect it
		registry.Lock()
		delete(registry.kinds, "pair:dot_test")
		registry.Unlock()
	})
	if err := RegisterPair("dot_test", func(o Options) (Loss, error) { return scaled{}, nil }); err == nil {
		t.Error("second RegisterPair of the same kind succeeded")
	}
	if err := Register("l2", func(o Options) (Loss, error) { return scaled{}, nil }); err == nil {
		t.Error("Register over the built-in l2 succeeded")
	}
	for _, bad := range []string{"", "a:b", "a b"} {
		if err := Register(bad, func(o Options) (Loss, error) { return scaled{}, nil }); err == nil {
			t.Errorf("Register(%q) succeeded", bad)
		}
	}
	if !slices.Contains(PairKinds(), "dot_test") || slices.Contains(Kinds(), "dot_test") {
		t.Errorf("dot_test: Kinds %v, PairKinds %v", Kinds(), PairKinds())
	}
	l, err := NewPair("dot_test", Options{Weight: 2})
	if err != nil {
		t.Fatal(err)
	}
	s := []Tensor{{Data: []float32{1, 2}, Shape: []int{2}}}
	tt := []Tensor{{Data: []float32{3, 4}, Shape: []int{2}}}
	if v, _ := l.Forward(s, tt, nil); v != 22 {
		t.Errorf("user loss = %v, want 22", v)
	}
}

// TestFormulas checks each loss on values small enough to compute by hand.
func TestFormulas(t *testing.T) {
	t2 := func(d ...float32) []Tensor { return []Tensor{{Data: d, Shape: []int{1, len(d)}}} }
	for _, tc := range []struct {
		name  string
		l     func() (Loss, error)
		s, t  []Tensor
		want  float64
		wantG []float64
		tol   float64
	}{
		// 100 * mean((1-0)^2, (2-4)^2) = 100 * 2.5
		{"l2 default weight 100", func() (Loss, error) { return New("l2", Options{}) }, t2(1, 2), t2(0, 4), 250, []float64{100, -200}, 1e-12},
		{"pair l2 weight 1", func() (Loss, error) { return NewPair("l2", Options{}) }, t2(1, 2), t2(0, 4), 2.5, []float64{1, -2}, 1e-12},
		// mean(|1-0|, |2-2|, |0-3|) = 4/3; gradient 0 at the tie
		{"l1 tie", func() (Loss, error) { return NewPair("l1", Options{}) }, t2(1, 2, 0), t2(0, 2, 3), 4.0 / 3, []float64{1.0 / 3, 0, -1.0 / 3}, 1e-7},
		// s = (1, 0), t = (0, 1): cos 0; loss 1; d(1-cos)/ds = -(t/(|s||t|)) + cos*s/|s|^2 = (0, -1)
		{"cosine orthogonal", func() (Loss, error) { return NewPair("cosine", Options{}) }, t2(1, 0), t2(0, 1), 1, []float64{0, -1}, 1e-12},
		// identical distributions: KL 0, gradient 0
		{"kl equal", func() (Loss, error) { return NewPair("kl", Options{Temperature: 3}) }, t2(1, 2, 3), t2(1, 2, 3), 0, []float64{0, 0, 0}, 1e-7},
		// two classes, equal logits: p = q = (1/2, 1/2); cross-entropy log 2, gradient 0
		{"soft_label uniform", func() (Loss, error) { return New("soft_label", Options{}) }, t2(5, 5), t2(-1, -1), math.Log(2), []float64{0, 0}, 1e-12},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := tc.l()
			if err != nil {
				t.Fatal(err)
			}
			g := [][]float32{make([]float32, len(tc.s[0].Data))}
			v, err := l.Forward(tc.s, tc.t, g)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(v-tc.want) > tc.tol*math.Max(1, math.Abs(tc.want)) {
				t.Errorf("loss %.15g, want %.15g", v, tc.want)
			}
			for i, w := range tc.wantG {
				if math.Abs(float64(g[0][i])-w) > 1e-6*math.Max(1, math.Abs(w)) {
					t.Errorf("grad[%d] = %v, want %v", i, g[0][i], w)
				}
			}
		})
	}
}

// TestFineGrainedHand: one anchor, one cell, one class, computed by hand.
func TestFineGrainedHand(t *testing.T) {
	// channels x, y, w, h, obj, cls
	s := []Tensor{{Data: []float32{0, 0, 1, 1, 0, 0}, Shape: []int{1, 6, 1, 1}}}
	tt := []Tensor{{Data: []float32{0, 0, 1, 3, 0, 0}, Shape: []int{1, 6, 1, 1}}}
	l, err := NewFineGrained(1, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	g := [][]float32{make([]float32, 6)}
	v, err := l.Forward(s, tt, g)
	if err != nil {
		t.Fatal(err)
	}
	// sig(obj_t) = 1/2; BCE(0, 1/2) = log 2; reg = (2 log2 + 0 + 2) / 2;
	// cls = log2 / 2; obj: target 1[0 > 0] = 0, BCE(0, 0) = log 2.
	ln2 := math.Log(2)
	wantReg, wantCls, wantObj := (2*ln2+2)/2, ln2/2, ln2
	reg, cls, obj := l.Parts()
	for _, c := range []struct {
		name      string
		got, want float64
	}{{"total", v, wantReg + wantCls + wantObj}, {"reg", reg, wantReg}, {"cls", cls, wantCls}, {"obj", obj, wantObj}} {
		if math.Abs(c.got-c.want) > 1e-12 {
			t.Errorf("%s = %.15g, want %.15g", c.name, c.got, c.want)
		}
	}
	// gradients: x, y: (sig(0) - 1/2)/2 = 0; w: tie -> 0; h: sign(1-3)/2 = -1/2;
	// obj: sig(0) - 0 = 1/2; cls: 0.
	want := []float32{0, 0, 0, -0.5, 0.5, 0}
	if !slices.Equal(g[0], want) {
		t.Errorf("grads %v, want %v", g[0], want)
	}
}

func TestShapeErrors(t *testing.T) {
	nm := func(name string, shape ...int) Tensor {
		x := Tensor{Name: name, Shape: shape}
		x.Data = make([]float32, x.Size())
		return x
	}
	for _, tc := range []struct {
		name string
		kind string
		pair bool
		o    Options
		s, t []Tensor
		want string
	}{
		{"pair mismatch names both", "l2", true, Options{}, []Tensor{nm("stu.p3", 1, 8, 4, 4)}, []Tensor{nm("tea.p3", 1, 16, 4, 4)},
			`student "stu.p3" has shape [1 8 4 4] but teacher "tea.p3" has shape [1 16 4 4]`},
		{"unnamed mismatch", "kl", true, Options{}, []Tensor{nm("", 2, 3)}, []Tensor{nm("", 2, 4)},
			`student[0] has shape [2 3] but teacher[0] has shape [2 4]`},
		{"count", "l2", false, Options{}, []Tensor{nm("a", 2), nm("b", 2)}, []Tensor{nm("c", 2)}, "2 student and 1 teacher"},
		{"data length", "l1", true, Options{}, []Tensor{{Name: "a", Data: make([]float32, 3), Shape: []int{2, 2}}}, []Tensor{nm("b", 2, 2)},
			`student "a" has 3 values, shape [2 2] needs 4`},
		{"cosine rank", "cosine", true, Options{}, []Tensor{nm("a", 5)}, []Tensor{nm("b", 5)}, "need [N, C, ...]"},
		{"fine_grained channels", "fine_grained", false, Options{NumClasses: 3}, []Tensor{nm("h0", 1, 25, 2, 2)}, []Tensor{nm("t0", 1, 25, 2, 2)},
			`student "h0" has shape [1 25 2 2], need [N, A*(5+3), H, W]`},
		{"fsp odd", "fsp", false, Options{}, []Tensor{nm("a", 1, 2, 2, 2)}, []Tensor{nm("b", 1, 2, 2, 2)}, "even number"},
		{"fsp spatial", "fsp", false, Options{}, []Tensor{nm("a", 1, 2, 2, 2), nm("b", 1, 2, 3, 2)},
			[]Tensor{nm("c", 1, 2, 2, 2), nm("d", 1, 2, 2, 2)}, "differ in batch or spatial size"},
		{"fsp matrix", "fsp", false, Options{}, []Tensor{nm("a", 1, 2, 2, 2), nm("b", 1, 3, 2, 2)},
			[]Tensor{nm("c", 1, 2, 5, 5), nm("d", 1, 4, 5, 5)}, "1x2x3 FSP matrix"},
		{"soft_label axis", "soft_label", false, Options{Axis: 3}, []Tensor{nm("a", 2, 3)}, []Tensor{nm("b", 2, 3)}, "axis 3 does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := newLoss(tc.pair, tc.kind, tc.o)
			if err != nil {
				t.Fatal(err)
			}
			_, err = l.Forward(tc.s, tc.t, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	// gradient buffer of the wrong length
	l, _ := NewPair("l2", Options{})
	_, err := l.Forward([]Tensor{nm("a", 4)}, []Tensor{nm("b", 4)}, [][]float32{make([]float32, 3)})
	if err == nil || !strings.Contains(err.Error(), `gradient of student "a" has 3 values`) {
		t.Errorf("short gradient: %v", err)
	}
}

// TestEdgeValues: degenerate inputs give finite values and gradients.
func TestEdgeValues(t *testing.T) {
	zero := []Tensor{{Data: make([]float32, 6), Shape: []int{1, 3, 2}}}
	one := []Tensor{{Data: []float32{1, 1, 1, 1, 1, 1}, Shape: []int{1, 3, 2}}}
	big := []Tensor{{Data: []float32{1e4, -1e4, 0, 5e3, -3e4, 2e4}, Shape: []int{1, 3, 2}}}
	cos, _ := NewPair("cosine", Options{})
	kl, _ := NewPair("kl", Options{Temperature: 0.5})
	sl, _ := New("soft_label", Options{Axis: 1})
	for _, c := range []struct {
		name string
		l    Loss
		s, t []Tensor
	}{
		{"cosine zero student", cos, zero, one}, {"cosine zero teacher", cos, one, zero},
		{"kl big", kl, big, one}, {"kl big teacher", kl, one, big},
		{"soft_label big", sl, big, one}, {"soft_label big teacher", sl, one, big},
	} {
		g := [][]float32{make([]float32, 6)}
		v, err := c.l.Forward(c.s, c.t, g)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			t.Errorf("%s: loss %v, %v", c.name, v, err)
		}
		for _, x := range g[0] {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				t.Errorf("%s: gradient %v", c.name, g[0])
				break
			}
		}
	}
	// a zero student has cosine 0 with anything: loss 1 per position
	if v, _ := cos.Forward(zero, one, nil); math.Abs(v-1) > 1e-12 {
		t.Errorf("cosine of a zero vector: loss %v, want 1", v)
	}
}

func bigInputs(r *rand.Rand, kind string) (s, t []Tensor, o Options) {
	switch kind {
	case "fine_grained":
		sh := [][]int{{4, 75, 10, 10}, {4, 75, 20, 20}}
		return randSide(r, 3, sh), randSide(r, 3, sh), Options{NumClasses: 20}
	case "fsp":
		sh := [][]int{{4, 16, 12, 12}, {4, 24, 12, 12}}
		return randSide(r, 1, sh), randSide(r, 1, sh), Options{}
	default:
		sh := [][]int{{4, 32, 16, 16}, {2, 8, 20, 20}}
		return randSide(r, 3, sh), randSide(r, 3, sh), Options{}
	}
}

// TestWorkersAndAllocs: on inputs large enough to run in parallel, the loss
// and gradients are bitwise identical for 1 and 4 workers; after the first
// call Forward allocates nothing; a second call accumulates the gradient;
// grads nil gives the same value.
func TestWorkersAndAllocs(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, kind := range []string{"l2", "fine_grained", "fsp", "soft_label", "pair:l1", "pair:cosine", "pair:kl"} {
		t.Run(kind, func(t *testing.T) {
			s, tt, o := bigInputs(r, kind)
			var vals []float64
			var gs [][][]float32
			for _, w := range []int{1, 4} {
				o.Workers = w
				var l Loss
				var err error
				if k, ok := strings.CutPrefix(kind, "pair:"); ok {
					l, err = NewPair(k, o)
				} else {
					l, err = New(kind, o)
				}
				if err != nil {
					t.Fatal(err)
				}
				grads := make([][]float32, len(s))
				for i := range s {
					grads[i] = make([]float32, len(s[i].Data))
				}
				v, err := l.Forward(s, tt, grads)
				if err != nil {
					t.Fatal(err)
				}
				vals = append(vals, v)
				gs = append(gs, grads)
				// Worker hand-off may allocate now and then inside the Go runtime when
				// the machine is loaded, so the strict check is on the serial path.
				if allocs := testing.AllocsPerRun(3, func() { l.Forward(s, tt, grads) }); w == 1 && allocs != 0 {
					t.Errorf("workers %d: %v allocations per Forward", w, allocs)
				}
				if v2, _ := l.Forward(s, tt, nil); v2 != v {
					t.Errorf("workers %d: value without gradient %v, with %v", w, v2, v)
				}
				if w == 1 {
					// 1 + 3 calls (AllocsPerRun runs once more than asked) accumulated
					one := make([][]float32, len(s))
					for i := range s {
						one[i] = make([]float32, len(s[i].Data))
					}
					l.Forward(s, tt, one)
					for i := range one {
						for j := range one[i] {
							if d := math.Abs(float64(grads[i][j] - 5*one[i][j])); d > 1e-5*math.Abs(float64(grads[i][j]))+1e-12 {
								t.Fatalf("accumulated gradient [%d][%d] = %v, want 5 x %v", i, j, grads[i][j], one[i][j])
							}
						}
					}
				}
				if c, ok := l.(interface{ Close() error }); ok {
					c.Close()
				}
			}
			if vals[0] != vals[1] {
				t.Errorf("workers 1: %v, workers 4: %v", vals[0], vals[1])
			}
			for i := range gs[0] {
				if !slices.Equal(gs[0][i], gs[1][i]) {
					t.Errorf("gradient %d differs between 1 and 4 workers", i)
				}
			}
		})
	}
}

func TestBinding(t *testing.T) {
	l, _ := NewPair("l2", Options{})
	sh := [][]int{{1, 2}}
	// online: student then teacher in ins
	b := &Binding{Loss: l, Student: sh, Teacher: sh, Names: []string{"s0", "t0"}}
	ins := [][]float32{{1, 2}, {0, 4}}
	grads := [][]float32{make([]float32, 2), make([]float32, 2)}
	if v := b.Func(ins, grads); v != 2.5 || b.Err() != nil {
		t.Fatalf("online: %v, %v", v, b.Err())
	}
	if !slices.Equal(grads[0], []float32{1, -2}) || !slices.Equal(grads[1], []float32{0, 0}) {
		t.Errorf("online grads %v", grads)
	}
	// offline: teacher from Source
	teacher := []Tensor{{Name: "soft", Data: []float32{0, 4}, Shape: []int{1, 2}}}
	ob := &Binding{Loss: l, Student: sh, Source: func() ([]Tensor, error) { return teacher, nil }}
	g1 := [][]float32{make([]float32, 2)}
	if v := ob.Func(ins[:1], g1); v != 2.5 || ob.Err() != nil {
		t.Fatalf("offline: %v, %v", v, ob.Err())
	}
	// offline shape mismatch: NaN, zero grads, error naming the tensors
	teacher[0].Shape = []int{2, 1}
	g1[0][0] = 7
	if v := ob.Func(ins[:1], g1); !math.IsNaN(v) {
		t.Errorf("mismatch: value %v, want NaN", v)
	}
	if err := ob.Err(); err == nil || !strings.Contains(err.Error(), `teacher "soft" has shape [2 1]`) {
		t.Errorf("mismatch error %v", err)
	}
	if !slices.Equal(g1[0], []float32{0, 0}) {
		t.Errorf("grads after an error %v, want zero", g1[0])
	}
	// Source failing
	boom := errors.New("truncated record")
	fb := &Binding{Loss: l, Student: sh, Source: func() ([]Tensor, error) { return nil, boom }}
	fb.Func(ins[:1], g1)
	if !errors.Is(fb.Err(), boom) {
		t.Errorf("source error %v", fb.Err())
	}
	// wrong input count
	if v := b.Func(ins[:1], grads[:1]); !math.IsNaN(v) || b.Err() == nil {
		t.Errorf("short ins: %v, %v", v, b.Err())
	}
}

func TestDefaultWeight(t *testing.T) {
	for _, c := range []struct {
		kind string
		pair bool
		want float64
	}{{"l2", false, 100}, {"fine_grained", false, 1000}, {"fsp", false, 1}, {"soft_label", false, 1},
		{"l2", true, 1}, {"kl", true, 1}, {"user_kind", false, 1}} {
		if got := DefaultWeight(c.kind, c.pair); got != c.want {
			t.Errorf("DefaultWeight(%q, %v) = %v, want %v", c.kind, c.pair, got, c.want)
		}
	}
}

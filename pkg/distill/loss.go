package distill

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
)

// Tensor is a dense float32 array in row-major (C) order: Data[i] for the
// index (i_0, ..., i_{k-1}) is at sum_j i_j * prod(Shape[j+1:]). Name is
// optional and only used in error messages (the graph or soft-target name of
// the tensor, e.g. "head0" or "teacher:head0").
type Tensor struct {
	Name  string
	Data  []float32
	Shape []int
}

// Size is the number of elements the shape calls for (1 for an empty shape).
func (t Tensor) Size() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// label is the tensor's name for messages: its Name, else role[i].
func (t Tensor) label(role string, i int) string {
	if t.Name != "" {
		return fmt.Sprintf("%s %q", role, t.Name)
	}
	return fmt.Sprintf("%s[%d]", role, i)
}

// Loss is a distillation loss: a scalar function of student tensors (which
// get a gradient) and teacher tensors (constants). Implement it to add a loss
// of your own, and Register it to make it available by name.
//
// Forward returns the weighted loss and, when grads is not nil, adds
// dLoss/dstudent[i] into grads[i] (len(grads) == len(student),
// len(grads[i]) == len(student[i].Data)); callers pass zeroed buffers when
// they want the gradient alone. It must not modify student or teacher. It
// returns an error, naming the tensors involved, when the number or shapes of
// the tensors do not fit the loss; grads are then in an unspecified state.
// A Loss need not be safe for concurrent use.
type Loss interface {
	// Name is the kind the loss was made as ("l2", "fine_grained", ...).
	Name() string
	Forward(student, teacher []Tensor, grads [][]float32) (float64, error)
}

// Options parameterises a loss made by New or NewPair. Zero values select the
// defaults given for each field; fields a kind does not use are ignored.
type Options struct {
	// Weight multiplies the loss. 0: the kind's default (DefaultWeight);
	// factories of user kinds read it as they like.
	Weight float64
	// NumClasses is C of the head outputs [N, A*(5+C), H, W] (fine_grained).
	NumClasses int
	// StudentTemperature, TeacherTemperature divide the logits before the
	// softmax (soft_label). 0: 1.
	StudentTemperature, TeacherTemperature float64
	// Temperature T of the kl pair loss. 0: 1.
	Temperature float64
	// Axis is soft_label's softmax axis: 0 (default) is the last axis, which
	// is what PaddleSlim does (softmax's axis=-1); k > 0 is axis k (1 is the
	// channel axis of NCHW); k < 0 counts from the end (-1 is the last axis).
	Axis int
	// Eps bounds the norms of the cosine pair loss from below. 0: 1e-8.
	Eps float64
	// Workers bounds the goroutines a loss uses (<= 0: GOMAXPROCS). Small
	// inputs run on the calling goroutine whatever the value.
	Workers int
}

// DefaultWeight is a built-in kind's weight when Options.Weight is 0: the
// PaddleDetection recipes for l2 (VOC, 100) and fine_grained (COCO, 1000),
// 1 otherwise (every pair kind included). Kinds added by Register get 1.
func DefaultWeight(kind string, pair bool) float64 {
	if pair {
		kind = "pair:" + kind
	}
	if w, ok := defaultWeight[kind]; ok {
		return w
	}
	return 1
}

var defaultWeight = map[string]float64{
	"l2":           100,
	"fine_grained": 1000,
	"fsp":          1,
	"soft_label":   1,
	"pair:l2":      1,
	"pair:l1":      1,
	"pair:cosine":  1,
	"pair:kl":      1,
}

// Factory makes a loss from options.
type Factory func(o Options) (Loss, error)

var registry = struct {
	sync.Mutex
	kinds map[string]Factory // "name" and "pair:name"
}{kinds: map[string]Factory{}}

func init() {
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	must(Register("l2", func(o Options) (Loss, error) { return NewL2(o.weightOr("l2"), o.Workers), nil }))
	must(Register("fine_grained", func(o Options) (Loss, error) {
		return asLoss(NewFineGrained(o.NumClasses, o.weightOr("fine_grained"), o.Workers))
	}))
	must(Register("fsp", func(o Options) (Loss, error) { return NewFSP(o.weightOr("fsp"), o.Workers), nil }))
	must(Register("soft_label", func(o Options) (Loss, error) {
		return asLoss(NewSoftLabel(o.StudentTemperature, o.TeacherTemperature, o.Axis, o.weightOr("soft_label"), o.Workers))
	}))
	must(RegisterPair("l2", func(o Options) (Loss, error) { return NewL2(o.weightOr("pair:l2"), o.Workers), nil }))
	must(RegisterPair("l1", func(o Options) (Loss, error) { return NewL1(o.weightOr("pair:l1"), o.Workers), nil }))
	must(RegisterPair("cosine", func(o Options) (Loss, error) { return asLoss(NewCosine(o.Eps, o.weightOr("pair:cosine"), o.Workers)) }))
	must(RegisterPair("kl", func(o Options) (Loss, error) { return asLoss(NewKL(o.Temperature, o.weightOr("pair:kl"), o.Workers)) }))
}

// asLoss converts a constructor's result, keeping a nil Loss on error.
func asLoss[T Loss](l T, err error) (Loss, error) {
	if err != nil {
		return nil, err
	}
	return l, nil
}

func (o Options) weightOr(kind string) float64 {
	if o.Weight != 0 {
		return o.Weight
	}
	if w, ok := defaultWeight[kind]; ok {
		return w
	}
	return 1
}

// Register makes f available to New under kind. It fails on an empty kind, a
// kind containing ':' or whitespace, or one already registered.
func Register(kind string, f Factory) error { return register(kind, "", f) }

// RegisterPair makes f available to NewPair under kind (a loss over named
// pairs of feature maps). Same rules as Register; the pair namespace is
// separate, so "l2" exists in both.
func RegisterPair(kind string, f Factory) error { return register(kind, "pair:", f) }

func register(kind, prefix string, f Factory) error {
	if kind == "" || strings.ContainsAny(kind, ": \t\n") {
		return fmt.Errorf("distill: invalid loss kind %q", kind)
	}
	if f == nil {
		return fmt.Errorf("distill: loss kind %q: nil factory", kind)
	}
	registry.Lock()
	defer registry.Unlock()
	if _, ok := registry.kinds[prefix+kind]; ok {
		return fmt.Errorf("distill: loss kind %q registered twice", prefix+kind)
	}
	registry.kinds[prefix+kind] = f
	return nil
}

// New makes the loss registered as kind: built in are "l2" (weight 100),
// "fine_grained" (weight 1000, needs NumClasses), "fsp" and "soft_label".
func New(kind string, o Options) (Loss, error) { return make1(kind, "", o) }

// NewPair makes the pair loss registered as kind: built in are "l2", "l1",
// "cosine" and "kl", all weight 1 by default.
func NewPair(kind string, o Options) (Loss, error) { return make1(kind, "pair:", o) }

func make1(kind, prefix string, o Options) (Loss, error) {
	registry.Lock()
	f, ok := registry.kinds[prefix+kind]
	registry.Unlock()
	if !ok {
		what := "loss"
		if prefix != "" {
			what = "pair loss"
		}
		return nil, fmt.Errorf("distill: unknown %s kind %q (known: %s)", what, kind, strings.Join(kinds(prefix), ", "))
	}
	if math.IsNaN(o.Weight) || math.IsInf(o.Weight, 0) {
		return nil, fmt.Errorf("distill: %s%s: weight %v", prefix, kind, o.Weight)
	}
	return f(o)
}

// Kinds lists the kinds New knows, sorted.
func Kinds() []string { return kinds("") }

// PairKinds lists the kinds NewPair knows, sorted.
func PairKinds() []string { return kinds("pair:") }

func kinds(prefix string) []string {
	registry.Lock()
	defer registry.Unlock()
	var out []string
	for k := range registry.kinds {
		rest, ok := strings.CutPrefix(k, prefix)
		if !ok || (prefix == "" && strings.Contains(k, ":")) {
			continue
		}
		out = append(out, rest)
	}
	sort.Strings(out)
	return out
}

// Binding adapts a Loss to pkg/nn's LossFunc, func(ins, grads [][]float32)
// float64, for Builder.Loss(name, ins, b.Func):
//
//   - online (Source nil): ins = the len(Student) student tensors, then the
//     len(Teacher) teacher tensors, with those shapes; the teacher's grads are
//     left zero.
//   - offline (Source set): ins = the student tensors only; Source returns
//     the teacher tensors of the current batch (e.g. from soft targets).
//
// A LossFunc cannot return an error: Func records the first one, returns NaN,
// and leaves the student's grads zero; check Err after each step. A Binding is
// not safe for concurrent use.
type Binding struct {
	Loss    Loss
	Student [][]int // shapes of the student tensors
	Teacher [][]int // shapes of the teacher tensors (online)
	// Names optionally label the tensors in errors: student names, then teacher names.
	Names  []string
	Source func() ([]Tensor, error)

	err error
	st  []Tensor
	tt  []Tensor
}

// Err returns the first error Func met, or nil.
func (b *Binding) Err() error { return b.err }

// Func is the LossFunc. See Binding.
func (b *Binding) Func(ins, grads [][]float32) float64 {
	ns := len(b.Student)
	if b.st == nil {
		b.st = make([]Tensor, ns)
		for i := range b.st {
			b.st[i].Shape = b.Student[i]
			if i < len(b.Names) {
				b.st[i].Name = b.Names[i]
			}
		}
		if b.Source == nil {
			b.tt = make([]Tensor, len(b.Teacher))
			for i := range b.tt {
				b.tt[i].Shape = b.Teacher[i]
				if ns+i < len(b.Names) {
					b.tt[i].Name = b.Names[ns+i]
				}
			}
		}
	}
	fail := func(err error) float64 {
		if b.err == nil {
			b.err = err
		}
		for i := 0; i < ns && i < len(grads); i++ {
			clear(grads[i])
		}
		return math.NaN()
	}
	want := ns
	if b.Source == nil {
		want += len(b.Teacher)
	}
	if len(ins) != want || len(grads) != want {
		return fail(fmt.Errorf("distill: %s: %d inputs and %d gradients, the binding has %d", b.Loss.Name(), len(ins), len(grads), want))
	}
	for i := 0; i < ns; i++ {
		b.st[i].Data = ins[i]
	}
	teacher := b.tt
	if b.Source == nil {
		for i := range b.tt {
			b.tt[i].Data = ins[ns+i]
		}
	} else {
		var err error
		if teacher, err = b.Source(); err != nil {
			return fail(fmt.Errorf("distill: %s: teacher targets: %w", b.Loss.Name(), err))
		}
	}
	v, err := b.Loss.Forward(b.st, teacher, grads[:ns])
	if err != nil {
		return fail(err)
	}
	return v
}

// checkTensors validates the data lengths of every tensor and, when grads is
// not nil, the gradient buffers.
func checkTensors(kind string, student, teacher []Tensor, grads [][]float32) error {
	for i, t := range student {
		if err := checkOne(kind, t, "student", i); err != nil {
			return err
		}
	}
	for i, t := range teacher {
		if err := checkOne(kind, t, "teacher", i); err != nil {
			return err
		}
	}
	if grads != nil {
		if len(grads) != len(student) {
			return fmt.Errorf("distill: %s: %d gradient buffers for %d student tensors", kind, len(grads), len(student))
		}
		for i, g := range grads {
			if len(g) != len(student[i].Data) {
				return fmt.Errorf("distill: %s: gradient of %s has %d values, the tensor %d", kind, student[i].label("student", i), len(g), len(student[i].Data))
			}
		}
	}
	return nil
}

func checkOne(kind string, t Tensor, role string, i int) error {
	for _, d := range t.Shape {
		if d < 1 {
			return fmt.Errorf("distill: %s: %s has shape %v, dimensions must be positive", kind, t.label(role, i), t.Shape)
		}
	}
	if len(t.Data) != t.Size() {
		return fmt.Errorf("distill: %s: %s has %d values, shape %v needs %d", kind, t.label(role, i), len(t.Data), t.Shape, t.Size())
	}
	return nil
}

// checkPairs requires len(student) == len(teacher) >= 1 and equal shapes pair by pair.
func checkPairs(kind string, student, teacher []Tensor, grads [][]float32) error {
	if len(student) == 0 || len(student) != len(teacher) {
		return fmt.Errorf("distill: %s: %d student and %d teacher tensors, need the same number (at least 1)", kind, len(student), len(teacher))
	}
	if err := checkTensors(kind, student, teacher, grads); err != nil {
		return err
	}
	for i := range student {
		if !slices.Equal(student[i].Shape, teacher[i].Shape) {
			return fmt.Errorf("distill: %s: %s has shape %v but %s has shape %v, they must be equal",
				kind, student[i].label("student", i), student[i].Shape, teacher[i].label("teacher", i), teacher[i].Shape)
		}
	}
	return nil
}

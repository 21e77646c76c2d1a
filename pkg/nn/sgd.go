package nn

import "fmt"

// SGD is stochastic gradient descent with momentum and L2 weight decay as
// PaddleDetection trains YOLOv3 (fluid Momentum optimizer with an L2Decay
// regularizer; torch.optim.SGD with dampening 0 and nesterov off is the same):
//
//	g = Grad + WeightDecay*Data   (only when Param.Decay)
//	v = Momentum*v + g
//	Data -= lr*v
//
// Only trainable parameters are updated. Step allocates nothing once every
// parameter has its velocity (created, zero, the first time it is seen).
type SGD struct {
	Momentum    float32
	WeightDecay float32
	ps          *ParamSet
	vel         []*Param // velocity per trainable parameter, same names
	byName      map[string]*Param
	of          []*Param // the parameter each velocity belongs to
}

// NewSGD returns a solver over every trainable parameter of ps (including
// ones created after this call). PaddleDetection's YOLOv3: momentum 0.9,
// weight decay 0.0005.
func NewSGD(ps *ParamSet, momentum, weightDecay float32) *SGD {
	s := &SGD{Momentum: momentum, WeightDecay: weightDecay, ps: ps, byName: map[string]*Param{}}
	s.sync()
	return s
}

// sync creates velocities for parameters added to the set since the last call.
func (s *SGD) sync() {
	for _, p := range s.ps.params {
		if !p.Trainable {
			continue
		}
		if _, ok := s.byName[p.Name]; ok {
			continue
		}
		v := &Param{Name: p.Name, Shape: p.Shape, Data: make([]float32, len(p.Data))}
		s.vel = append(s.vel, v)
		s.of = append(s.of, p)
		s.byName[p.Name] = v
	}
}

// Step applies one update with learning rate lr, reading Param.Grad.
func (s *SGD) Step(lr float32) {
	if len(s.vel) != s.countTrainable() {
		s.sync()
	}
	mu, wd := s.Momentum, s.WeightDecay
	for i, v := range s.vel {
		p := s.of[i]
		data, grad, vel := p.Data, p.Grad[:len(p.Data)], v.Data[:len(p.Data)]
		decay := p.Decay && wd != 0
		// Every element on its own: large tensors are spread over the
		// workers (the same bits for any split).
		const block = 1 << 15
		if len(data) <= block {
			sgdUpdate(data, grad, vel, mu, wd, lr, decay)
			continue
		}
		parallelFor((len(data)+block-1)/block, func(_, lo, hi int) {
			a, b := lo*block, min(hi*block, len(data))
			sgdUpdate(data[a:b], grad[a:b], vel[a:b], mu, wd, lr, decay)
		})
	}
}

// sgdUpdate is the momentum step over one run of a parameter's elements:
// v = mu*v + g (+ wd*w when decay), w -= lr*v.
func sgdUpdate(data, grad, vel []float32, mu, wd, lr float32, decay bool) {
	grad, vel = grad[:len(data)], vel[:len(data)]
	if decay {
		for j, g := range grad {
			vj := mu*vel[j] + g + wd*data[j]
			vel[j] = vj
			data[j] -= lr * vj
		}
		return
	}
	for j, g := range grad {
		vj := mu*vel[j] + g
		vel[j] = vj
		data[j] -= lr * vj
	}
}

func (s *SGD) countTrainable() int {
	n := 0
	for _, p := range s.ps.params {
		if p.Trainable {
			n++
		}
	}
	return n
}

// State returns the velocity tensors, one per trainable parameter and named
// like it, for checkpoints: save their Data, or copy saved values into it
// (SetState does that with checks).
func (s *SGD) State() []*Param {
	s.sync()
	return s.vel
}

// SetState copies a saved velocity into the one named name.
func (s *SGD) SetState(name string, data []float32) error {
	s.sync()
	v, ok := s.byName[name]
	if !ok {
		return fmt.Errorf("nn: solver has no velocity for %q", name)
	}
	if len(data) != len(v.Data) {
		return fmt.Errorf("nn: velocity %q has %d values, got %d", name, len(v.Data), len(data))
	}
	copy(v.Data, data)
	return nil
}

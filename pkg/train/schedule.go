package train

// Schedule is PaddleDetection's YOLOv3 learning-rate policy: PiecewiseDecay
// (base_lr, multiplied by Gamma at each milestone passed) wrapped by
// LinearWarmup (fluid.layers.linear_lr_warmup with start_lr =
// base_lr*WarmupStartFactor and end_lr = base_lr): for iteration it <
// WarmupSteps the rate is start + (end-start)*it/WarmupSteps, after that the
// piecewise value. Iterations count from 0.
type Schedule struct {
	BaseLR            float64
	Milestones        []int   // ascending iterations at which the rate is multiplied by Gamma
	Gamma             float64 // e.g. 0.1
	WarmupSteps       int     // 0: no warmup
	WarmupStartFactor float64 // PaddleDetection YOLOv3 configs use 0
}

// At returns the learning rate used for iteration it (0-based).
func (s Schedule) At(it int) float64 {
	if it < s.WarmupSteps {
		start := s.BaseLR * s.WarmupStartFactor
		return start + (s.BaseLR-start)*float64(it)/float64(s.WarmupSteps)
	}
	lr := s.BaseLR
	for _, m := range s.Milestones {
		if it >= m {
			lr *= s.Gamma
		}
	}
	return lr
}

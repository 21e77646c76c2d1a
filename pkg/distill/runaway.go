package distill

import (
	"fmt"
	"math"
	"strconv"
)

// Runaway watches a distillation run for a distillation loss that drowns the
// student's own detection loss: a weight too large for the teacher at hand
// (PaddleDetection's fine-grained weight 1000 with a weak teacher gave
// 881,972 against 185, and the detection loss then grew). It is fed each
// iteration's two losses and says so once.
type Runaway struct {
	// Ratio: the distillation loss is a runaway while it is above Ratio
	// times the detection loss (distill.warn_ratio); 0 never warns.
	Ratio float64
	// Iters is how many iterations in a row it must stay so before the
	// warning (distill.warn_iters; at least 1).
	Iters int
	// Weight is distill.weight, the multiplier that drives the term.
	Weight float64
	// Terms names the distillation losses in the message ("distill.l2").
	Terms string

	run    int  // consecutive iterations above the ratio so far
	warned bool // the warning was given
}

// NewRunaway returns the watch of a recipe's terms with the thresholds of
// warn_ratio and warn_iters and the weight of distill.weight.
func NewRunaway(rec *Recipe, ratio float64, iters int, weight float64) *Runaway {
	r := &Runaway{Ratio: ratio, Iters: max(iters, 1), Weight: weight}
	for i, t := range rec.Terms {
		if i > 0 {
			r.Terms += "+"
		}
		r.Terms += t.Name
	}
	return r
}

// Observe takes the losses of iteration done (counted from 1): the detection
// loss (the YOLOv3 loss, the sum of its parts) and the distillation loss (the
// sum of the recipe's weighted terms). It returns the warning, once, at the
// iteration that completes Iters in a row with distillation > Ratio *
// detection, and "" otherwise (also when either value is not finite: the
// training loop reports those).
func (r *Runaway) Observe(done int, detection, distillation float64) string {
	if r == nil || r.Ratio <= 0 || r.warned {
		return ""
	}
	if math.IsNaN(detection) || math.IsInf(detection, 0) || math.IsNaN(distillation) || math.IsInf(distillation, 0) ||
		!(distillation > r.Ratio*detection) {
		r.run = 0
		return ""
	}
	r.run++
	if r.run < r.Iters {
		return ""
	}
	r.warned = true
	terms := "the distillation loss"
	if r.Terms != "" {
		terms += " (" + r.Terms + ")"
	}
	msg := fmt.Sprintf("%s has stayed above %s times the detection loss for %d iterations: %s against %s at iteration %d (%s times); "+
		"distill.weight %s drives it", terms, num(r.Ratio), r.run, num(distillation), num(detection), done,
		num(distillation/math.Max(detection, math.SmallestNonzeroFloat64)), num(r.Weight))
	if r.Weight > 0 && detection > 0 {
		// The term is linear in the weight: the weight that makes it 10
		// times the detection loss now.
		w := r.Weight * 10 * detection / distillation
		msg += fmt.Sprintf(" (-o distill.weight=%s would make it 10 times now)", strconv.FormatFloat(roundSig(w, 2), 'g', -1, 64))
	}
	msg += "; a weak teacher does the same; distill.warn_ratio sets the threshold (0: never warn)"
	return msg
}

// num formats a loss for a message: whole numbers from 1000 up (to 1e9),
// else 4 significant digits.
func num(x float64) string {
	switch ax := math.Abs(x); {
	case ax >= 1e9 || (ax != 0 && ax < 1e-3):
		return strconv.FormatFloat(x, 'g', 4, 64)
	case ax >= 1000:
		return strconv.FormatFloat(x, 'f', 0, 64)
	}
	return strconv.FormatFloat(roundSig(x, 4), 'f', -1, 64)
}

// roundSig rounds x to n significant digits.
func roundSig(x float64, n int) float64 {
	if x == 0 || math.IsNaN(x) || math.IsInf(x, 0) {
		return x
	}
	p := math.Pow(10, float64(n)-math.Ceil(math.Log10(math.Abs(x))))
	return math.Round(x*p) / p
}

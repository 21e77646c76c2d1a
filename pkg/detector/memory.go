package detector

import (
	"fmt"

	"yolodistill/pkg/config"
	"yolodistill/pkg/yolo"
)

// Memory per activation value of a graph, in bytes, as measured: the sum
// over the model's layer outputs ([C, H, W] of yolo.Spec.Infer, plus the
// input) times the batch, times these. An inference graph holds each layer's
// float32 output, BatchNorm's fused output and the im2col columns: 2.1-2.2x
// the outputs' float32 bytes for MobileNetV1 and ResNet18/34 YOLOv3 at 256
// and 512 px, batch 1 and 2 (heap growth after Predict), and detect-infer's
// whole process 2.5x at 4096 px (its input and resize buffers too). A
// training graph adds the gradients and the loss buffers: detect-train's
// whole process 4.4-4.7x (tiny student, 256-1024 px, batch 2). The factors
// below round those up: an estimate meant to refuse what cannot fit, not to
// refuse what might.
const (
	inferBytesPerValue = 4 * 2.5
	trainBytesPerValue = 4 * 5.0
)

// MemoryNeed estimates the bytes a graph of n images of h x w pixels through
// spec's model needs (a training graph when train): its activation, gradient
// and scratch buffers. It is computed in float64 from the layer shapes, so
// absurd sizes give huge numbers, never an overflow. Errors are Spec.Infer's.
func MemoryNeed(spec *yolo.Spec, n, h, w int, train bool) (float64, error) {
	inf, err := spec.Infer(h, w)
	if err != nil {
		return 0, err
	}
	values := float64(inf.Input.C) * float64(inf.Input.H) * float64(inf.Input.W)
	for _, l := range inf.Layers {
		values += float64(l.Shape.C) * float64(l.Shape.H) * float64(l.Shape.W)
	}
	per := inferBytesPerValue
	if train {
		per = trainBytesPerValue
	}
	return float64(n) * values * per, nil
}

// MemoryError says that an input size needs more memory than the machine has
// available: the need, the memory and where its number comes from, and the
// largest size (a multiple of 32) that fits.
type MemoryError struct {
	H, W, Batch int
	Train       bool
	Need        float64 // bytes, MemoryNeed
	Avail       int64   // bytes available (Memory.Bytes, less what graphs already hold)
	Source      string  // Memory.Source
	Fits        int     // the largest square size that fits at this batch; 0: none
}

func (e *MemoryError) Error() string {
	what := "an inference"
	if e.Train {
		what = "a training"
	}
	fits := fmt.Sprintf("the largest input that fits is %d px", e.Fits)
	if e.Fits == 0 {
		fits = "not even 32 px fits: free memory or use a smaller batch"
	}
	if e.Train && e.Batch > 1 {
		fits += "; or a smaller train.batch_size, with train.base_lr scaled by the same factor (the linear rule)"
	}
	return fmt.Sprintf("a %dx%d input needs about %s for %s graph of %d image(s) (estimated from the model's layer shapes), more than the %s available by %s: %s",
		e.H, e.W, bytesText(e.Need), what, e.Batch, bytesText(float64(e.Avail)), e.Source, fits)
}

// availableMemory is AvailableMemory; tests replace it.
var availableMemory = AvailableMemory

// CheckMemory returns a *MemoryError when n images of h x w pixels
// through spec's model (a training graph when train) need more memory than
// AvailableMemory reports plus held, the bytes of graph buffers already
// allocated that the new graph reuses (nn.ParamSet.ReusableBytes); nil when
// they fit, or when the available memory is not known (not Linux). Call it
// before allocating anything for that size: it reads the model's shapes only.
func CheckMemory(spec *yolo.Spec, n, h, w int, train bool, held int64) error {
	mem, ok := availableMemory()
	if !ok {
		return nil
	}
	need, err := MemoryNeed(spec, n, h, w, train)
	if err != nil {
		return err
	}
	avail := mem.Bytes + held
	if need <= float64(avail) {
		return nil
	}
	e := &MemoryError{H: h, W: w, Batch: n, Train: train, Need: need, Avail: avail, Source: mem.Source}
	// The largest square multiple of 32 that fits (the need grows with the size).
	lo, hi := 0, max(h, w)/32 // lo fits (0: nothing), hi does not
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if v, err := MemoryNeed(spec, n, 32*mid, 32*mid, train); err == nil && v <= float64(avail) {
			lo = mid
		} else {
			hi = mid
		}
	}
	e.Fits = 32 * lo
	return e
}

// CheckSizes checks every square input size of sizes for spec's model (n
// images per graph, training graphs when train) with CheckMemory, before
// anything is built. A size that does not fit is a *config.Error on key of
// cfg (the configuration key the sizes come from, e.g. "eval.size" or
// "data.augment.multi_scale"), blamed on the -o override that set it (a usage
// error, exit 2) or on the configuration file. spec nil is cfg's model.
func CheckSizes(spec *yolo.Spec, cfg *config.Config, key string, sizes []int, n int, train bool) error {
	if spec == nil {
		var err error
		if spec, err = yolo.FromModelConfig(cfg.Model); err != nil {
			return err
		}
	}
	for _, s := range sizes {
		if err := CheckMemory(spec, n, s, s, train, 0); err != nil {
			return cfg.Errorf(key, "%v", err)
		}
	}
	return nil
}

// CheckSize is CheckMemory for n images of size x size pixels through cfg's
// model, for a size given on the command line (the caller names the flag).
func CheckSize(cfg *config.Config, n, size int, train bool) error {
	spec, err := yolo.FromModelConfig(cfg.Model)
	if err != nil {
		return err
	}
	return CheckMemory(spec, n, size, size, train, 0)
}

// bytesText prints a byte count in MB, GB or TB (powers of 1000).
func bytesText(b float64) string {
	switch {
	case b >= 1e12:
		return fmt.Sprintf("%.1f TB", b/1e12)
	case b >= 1e9:
		return fmt.Sprintf("%.1f GB", b/1e9)
	}
	return fmt.Sprintf("%.0f MB", b/1e6)
}

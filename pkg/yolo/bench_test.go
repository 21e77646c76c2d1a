package yolo

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"testing"
	"time"

	"yolodistill/pkg/nn"
)

// The full-width benchmarks of issue 2, measured the way
// ../shared/bench/torch_reference.py measures PyTorch: the train step is
// forward + backward + SGD (momentum 0.9, weight decay 5e-4) with an MSE loss
// of every head output against fixed random targets; inference is a forward
// pass with running BatchNorm statistics. When YOLODISTILL_BENCH_JSON names a
// file, each benchmark appends one JSON line with torch_reference.py's fields
// (make bench prints them beside PyTorch's).

func BenchmarkTrainStepMobileNetV1YOLOv3(b *testing.B) {
	benchNetwork(b, BackboneMobileNetV1, "train", 320, 8)
}

// BenchmarkTrainStepResNet34YOLOv3: the teacher's training step (the
// same measurement as the MobileNetV1 one).
func BenchmarkTrainStepResNet34YOLOv3(b *testing.B) {
	benchNetwork(b, BackboneResNet34, "train", 320, 8)
}

func BenchmarkInferResNet34YOLOv3(b *testing.B) {
	benchNetwork(b, BackboneResNet34, "infer", 320, 8)
}

func benchNetwork(b *testing.B, backbone, mode string, size, batch int) {
	nn.TuneGC() // as the tools run
	// The testing package calls a benchmark twice (b.N = 1, then the
	// -benchtime count), each call building its own network: collect the
	// previous call's before building, so that max RSS is that of one
	// network (as a tool holds), whatever GOGC.
	runtime.GC()
	const classes = 20
	spec, err := New(Config{Backbone: backbone, NumClasses: classes})
	if err != nil {
		b.Fatal(err)
	}
	inf, err := spec.Infer(size, size)
	if err != nil {
		b.Fatal(err)
	}
	ps := nn.NewParamSet(0)
	nb := nn.NewBuilder(ps, []int{batch, 3, size, size})
	built, err := Build(spec, nb)
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	if mode == "train" {
		targets := make([][]float32, len(built.Outputs))
		for i, o := range built.Outputs {
			n := 1
			for _, d := range o.Shape() {
				n *= d
			}
			targets[i] = make([]float32, n)
			for j := range targets[i] {
				targets[i][j] = float32(r.NormFloat64())
			}
		}
		nb.Loss("mse", built.Outputs, func(ins, grads [][]float32) float64 {
			total := 0.0
			for i, x := range ins {
				inv := 1 / float64(len(x))
				for j, v := range x {
					d := float64(v - targets[i][j])
					total += d * d * inv
					grads[i][j] = float32(2 * d * inv)
				}
			}
			return total
		})
	}
	if mode == "infer" { // as detector.Predict builds it: only the outputs stay readable
		var keep []string
		for _, o := range built.Outputs {
			keep = append(keep, o.Name())
		}
		nb.ReuseBuffers(keep...)
	}
	g, err := nb.Build()
	if err != nil {
		b.Fatal(err)
	}
	in := g.Input()
	for i := range in {
		in[i] = float32(r.NormFloat64())
	}
	sgd := nn.NewSGD(ps, 0.9, 5e-4)
	step := func() {
		if mode == "train" {
			if _, err := g.Step(); err != nil {
				b.Fatal(err)
			}
			sgd.Step(1e-4)
		} else if err := g.Forward(false); err != nil {
			b.Fatal(err)
		}
	}
	step() // warm-up: buffers, velocities
	b.ResetTimer()
	times := make([]float64, 0, b.N)
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		step()
		times = append(times, time.Since(t0).Seconds())
	}
	b.StopTimer()
	slices.Sort(times)
	med := times[len(times)/2]
	work := float64(inf.FLOPs) * float64(batch)
	if mode == "train" {
		work *= 3
	}
	b.ReportMetric(float64(batch)/med, "images/s")
	if path := os.Getenv("YOLODISTILL_BENCH_JSON"); path != "" && b.N > 1 {
		name := map[string]string{BackboneMobileNetV1: "mobilenet_v1", BackboneResNet34: "resnet34"}[backbone]
		line, _ := json.Marshal(map[string]any{
			"impl": "yolodistill-go", "model": name, "mode": mode, "size": size, "batch": batch,
			"classes": classes, "threads": runtime.GOMAXPROCS(0),
			"gflop_per_image_fwd": float64(inf.FLOPs) / 1e9, "step_s_median": med,
			"step_s_min": times[0], "step_s_max": times[len(times)-1],
			"images_per_s": float64(batch) / med, "gflops_per_s": work / med / 1e9,
			"blas": nn.BLASName + ":" + nn.BLASCore(), "conv": nn.ConvName(),
		})
		f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			b.Fatal(err)
		}
		f.Write(append(line, '\n'))
		f.Close()
	}
}

package teacher

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"yolodistill/pkg/augment"
	"yolodistill/pkg/config"
	"yolodistill/pkg/detector"
	"yolodistill/pkg/distill"
	"yolodistill/pkg/nn"
	"yolodistill/pkg/softtarget"
	"yolodistill/pkg/train"
	"yolodistill/pkg/yolo/loss"
)

// BenchmarkStepCost times one training step of the synthetic preset student
// (pipelines/configs/synth_student.yml: MobileNetV1 x0.25, batch 8, 256 px)
// three ways on the same batch, interleaved round by round so that load
// changes hit all three alike:
//
//   - detect: the YOLOv3 loss only (detect-train's step);
//   - offline: plus the fine-grained distillation loss from stored teacher
//     outputs (student-train --soft-targets: stacking the views' outputs,
//     the loss and its gradient);
//   - online: plus running the teacher (synth_teacher.yml) on the batch.
//
// It reports ms per step of each and the ratios offline/detect and
// online/detect. Data loading is not included (the same work, augmentation,
// runs beside the step in all three; offline adds decoding Arrow rows).
func BenchmarkStepCost(b *testing.B) {
	ctx := context.Background()
	st, err := config.Load("../../pipelines/configs/synth_student.yml", nil)
	if err != nil {
		b.Fatal(err)
	}
	tc, err := config.Load(st.TeacherPath(), nil)
	if err != nil {
		b.Fatal(err)
	}
	src, err := train.OpenLoader(ctx, st, nil, augment.Shard{})
	if err != nil {
		b.Fatal(err)
	}
	batch, err := src.Next(ctx)
	src.Close()
	if err != nil {
		b.Fatal(err)
	}
	n, size := len(batch.Items), batch.Size
	gts := make([][]loss.GT, n)
	for i, it := range batch.Items {
		for _, tg := range it.Targets {
			v := tg.NormCXCYWH(size)
			gts[i] = append(gts[i], loss.GT{CX: v[0], CY: v[1], W: v[2], H: v[3], Label: tg.Label, Score: float32(tg.Score)})
		}
	}
	teacher, err := detector.New(tc)
	if err != nil {
		b.Fatal(err)
	}
	// Stored views: the teacher's outputs per image, as a soft-target reader gives them.
	outs, outShapes, err := teacher.Predict(batch.Images, n, size, size)
	if err != nil {
		b.Fatal(err)
	}
	views := make([]*softtarget.View, n)
	for i := range views {
		v := &softtarget.View{InputH: size, InputW: size}
		for s, sh := range outShapes {
			per := sh[1] * sh[2] * sh[3]
			v.Outputs = append(v.Outputs, softtarget.Tensor{Shape: []int{sh[1], sh[2], sh[3]}, Data: append([]float32(nil), outs[s][i*per:(i+1)*per]...)})
		}
		views[i] = v
	}

	type mode struct {
		name    string
		net     *detector.Net
		prepare func() error
		total   time.Duration
	}
	mk := func(name string, online, distil bool) *mode {
		det, err := detector.New(st)
		if err != nil {
			b.Fatal(err)
		}
		crit, err := loss.New(loss.Config{Path: loss.OperatorPath, Anchors: det.Anchors, Masks: det.Masks, Strides: det.Spec.Strides,
			NumClasses: det.Spec.NumClasses, IgnoreThresh: float32(st.Loss.IgnoreThresh), ScaleXY: float32(st.Loss.ScaleXY)})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(crit.Close)
		m := &mode{name: name, prepare: func() error { return nil }}
		var d *distill.Student
		if distil {
			rec, err := distill.NewRecipe(st.Distill, 3, st.Model.NumClasses, 0)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(rec.Close)
			if online {
				on := &Online{Det: teacher, refs: rec.TeacherRefs(), sh: shapes{spec: teacher.Spec}}
				d = distill.NewStudent(rec, on, st.Model.AnchorMasks)
				m.prepare = func() error { return on.Prepare(batch) }
			} else {
				off := NewOffline(rec, nil)
				off.setViews(views)
				d = distill.NewStudent(rec, off, st.Model.AnchorMasks)
				m.prepare = off.Prepare
			}
		}
		det.OnBuild = func(bd *nn.Builder, net *detector.Net) error {
			bd.Loss("yolo", net.Built.Outputs, func(ins, grads [][]float32) float64 {
				p, err := crit.Forward(ins, net.Shapes, gts, net.H, net.W, grads)
				if err != nil {
					return math.NaN()
				}
				return p.Total
			})
			if d != nil {
				return d.Attach(bd, net)
			}
			return bd.Err()
		}
		if m.net, err = det.Net(n, size, size, true); err != nil {
			b.Fatal(err)
		}
		return m
	}
	modes := []*mode{mk("detect", false, false), mk("offline", false, true), mk("online", true, true)}
	step := func(m *mode) {
		start := time.Now()
		if err := m.net.Graph.SetInput(batch.Images); err != nil {
			b.Fatal(err)
		}
		if err := m.prepare(); err != nil {
			b.Fatal(err)
		}
		vals, err := m.net.Graph.Step()
		if err != nil || math.IsNaN(vals[0]) {
			b.Fatal(err, vals)
		}
		m.total += time.Since(start)
	}
	for _, m := range modes { // warm up (first-step allocations)
		step(m)
		m.total = 0
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for k := range modes { // rotate the order: no mode always runs first
			step(modes[(i+k)%len(modes)])
		}
	}
	ms := func(m *mode) float64 { return m.total.Seconds() * 1e3 / float64(b.N) }
	for _, m := range modes {
		b.ReportMetric(ms(m), m.name+"-ms/step")
	}
	b.ReportMetric(ms(modes[1])/ms(modes[0]), "offline/detect")
	b.ReportMetric(ms(modes[2])/ms(modes[0]), "online/detect")
	if testing.Verbose() {
		fmt.Printf("batch %d x %d px\n", n, size)
	}
}

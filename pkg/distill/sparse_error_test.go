package distill_test

// How far the lossy soft-target encodings (float16, sparse) move the
// distillation losses away from the dense float32 teacher outputs.
//
// TestSparseFineGrainedErrorBound (always on) round-trips synthetic teacher
// outputs through pkg/softtarget's writer and reader and checks the
// fine-grained loss and gradient against a bound derived from the threshold.
//
// TestSparseErrorReal (gated by YOLODISTILL_SPARSE_ERROR=DIR) measures the
// error on real teacher-dump files; see its comment for the files it needs.

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"yolodistill/pkg/augment"
	"yolodistill/pkg/config"
	"yolodistill/pkg/detector"
	"yolodistill/pkg/distill"
	"yolodistill/pkg/softtarget"
	"yolodistill/pkg/softtarget/softtargettest"
	"yolodistill/pkg/train"
)

// Bound on the sparse encoding's fine-grained error. Dense and sparse views
// differ only at unstored cells, where p = sig(obj_t) < thr, and only in the
// teacher's x, y, w, h and class logits, which decode as 0 (objectness is
// always stored, so L_obj is exact). With M = N*A*H*W of the scale, W the
// weight and BCE(z, q) = max(z,0) - z*q + log(1+exp(-|z|)), linear in q:
//
//	x, y:  BCE(x_s, sig(x_t)) - BCE(x_s, 1/2) = -x_s (sig(x_t) - 1/2), |.| <= |x_s|/2
//	w, h:  ||w_s - w_t| - |w_s - 0|| <= |w_t|              (triangle inequality)
//	cls c: |cls_s,c| |sig(cls_t,c) - 1/2| <= |cls_s,c|/2
//
// each weighted by p, so per view
//
//	|L_sparse - L_dense| <= W sum_k sum_{unstored} p (|x_s|/2 + |y_s|/2 + |w_t| + |h_t| + sum_c |cls_s,c|/(2C)) / M_k
//	                     <= thr * W sum_k sum_{unstored} (same bracket) / M_k.
//
// The gradient differs only at unstored cells' box and class channels:
// x, y by W p |sig(x_t) - 1/2| / M <= W thr / (2M); w, h by at most
// 2 W p / M <= 2 W thr / M (a sign flip); class c by <= W thr / (2 M C); and
// objectness not at all. float16 halves the relative precision to 2^-11, so
// dense16's loss moves by about 1e-3 relative or less.

// synthViews draws n views (image ids 1..n) of a teacher with the given
// number of classes at input side in: per scale [A*(5+C), in/stride,
// in/stride]; x, y, w, h, cls ~ N(0, 2), objectness of a trained head
// (softtargettest.Trained: almost every cell background far below 0, a tail
// of uncertain cells around the thresholds, and a few confident cells).
func synthViews(rng *rand.Rand, classes, in, n int) []*softtarget.View {
	g := softtargettest.Gen{Rand: rng, Objectness: softtargettest.Trained}
	m := softtargettest.Meta(classes, softtarget.Encoding{})
	var vs []*softtarget.View
	for id := 1; id <= n; id++ {
		vs = append(vs, g.View(&m, int64(id), 0, in, in))
	}
	return vs
}

// roundTrip writes views with the encoding and reads them back.
func roundTrip(t *testing.T, classes int, enc softtarget.Encoding, views []*softtarget.View) []*softtarget.View {
	t.Helper()
	return softtargettest.RoundTrip(t, softtargettest.Meta(classes, enc), views)
}

// asBatch gives the view's outputs as [1, A*(5+C), H, W] distill tensors.
func asBatch(outs []softtarget.Tensor) []distill.Tensor {
	ts := make([]distill.Tensor, len(outs))
	for s, o := range outs {
		ts[s] = distill.Tensor{Name: fmt.Sprint("head", s), Data: o.Data, Shape: append([]int{1}, o.Shape...)}
	}
	return ts
}

// perturbed is a stand-in student: the teacher's logits plus N(0, sd) noise.
func perturbed(rng *rand.Rand, outs []softtarget.Tensor, sd float64) []distill.Tensor {
	ts := asBatch(outs)
	for s := range ts {
		d := make([]float32, len(ts[s].Data))
		for i, x := range ts[s].Data {
			d[i] = x + float32(sd*rng.NormFloat64())
		}
		ts[s].Data = d
	}
	return ts
}

func zeroGrads(ts []distill.Tensor) [][]float32 {
	g := make([][]float32, len(ts))
	for i, t := range ts {
		g[i] = make([]float32, len(t.Data))
	}
	return g
}

func sig(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

func TestSparseFineGrainedErrorBound(t *testing.T) {
	const weight = 1.0
	cases := []struct {
		name    string
		classes int
		in      int
		thr     float64
	}{
		{"3 classes 128px thr 0 (stores every cell: exact)", 3, 128, 0},
		{"3 classes 128px thr 0.5", 3, 128, 0.5},
		{"3 classes 128px thr 0.1", 3, 128, 0.1},
		{"3 classes 128px thr 0.01", 3, 128, 0.01},
		{"20 classes 96px thr 0.1", 20, 96, 0.1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(tc.classes), uint64(tc.in)))
			views := synthViews(rng, tc.classes, tc.in, 2)
			sparse := roundTrip(t, tc.classes, softtarget.Encoding{Kind: softtarget.Sparse, Threshold: tc.thr}, views)
			fg, err := distill.NewFineGrained(tc.classes, weight, 1)
			if err != nil {
				t.Fatal(err)
			}
			defer fg.Close()
			k := 5 + tc.classes
			unstored, stored := 0, 0
			for vi, v := range views {
				student := perturbed(rng, v.Outputs, 1)
				gd, gs := zeroGrads(student), zeroGrads(student)
				ld, err := fg.Forward(student, asBatch(v.Outputs), gd)
				if err != nil {
					t.Fatal(err)
				}
				ls, err := fg.Forward(student, asBatch(sparse[vi].Outputs), gs)
				if err != nil {
					t.Fatal(err)
				}
				// Per-cell bound, and the same with p replaced by thr.
				var bound, thrBound float64
				for s, o := range v.Outputs {
					a, hw := o.Shape[0]/k, o.Shape[1]*o.Shape[2]
					m := float64(a * hw)
					sd, td := student[s].Data, o.Data
					for ai := 0; ai < a; ai++ {
						for p := 0; p < hw; p++ {
							at := func(c int) int { return (ai*k+c)*hw + p }
							pr := sig(float64(td[at(4)]))
							if sparse[vi].Stored[s][ai*hw+p] {
								stored++
								if pr < tc.thr {
									t.Fatalf("scale %d cell %d stored with p=%g < thr", s, ai*hw+p, pr)
								}
								for c := 0; c < k; c++ {
									if sparse[vi].Outputs[s].Data[at(c)] != td[at(c)] {
										t.Fatalf("stored cell channel %d: %g != %g", c, sparse[vi].Outputs[s].Data[at(c)], td[at(c)])
									}
								}
								continue
							}
							unstored++
							if pr >= tc.thr {
								t.Fatalf("scale %d cell %d not stored with p=%g >= thr %g", s, ai*hw+p, pr, tc.thr)
							}
							br := math.Abs(float64(sd[at(0)]))/2 + math.Abs(float64(sd[at(1)]))/2 +
								math.Abs(float64(td[at(2)])) + math.Abs(float64(td[at(3)]))
							for c := 5; c < k; c++ {
								br += math.Abs(float64(sd[at(c)])) / (2 * float64(tc.classes))
							}
							bound += weight * pr * br / m
							thrBound += weight * tc.thr * br / m
							// Gradient bounds, element by element.
							lim := []float64{pr / (2 * m), pr / (2 * m), 2 * pr / m, 2 * pr / m, 0}
							for c := 0; c < k; c++ {
								l := pr / (2 * m * float64(tc.classes))
								if c < 5 {
									l = lim[c]
								}
								d := math.Abs(float64(gs[s][at(c)] - gd[s][at(c)]))
								if d > weight*l*(1+1e-4)+1e-9 {
									t.Fatalf("scale %d anchor %d cell %d channel %d: gradient moved by %g, bound %g", s, ai, p, c, d, weight*l)
								}
							}
						}
					}
				}
				diff := math.Abs(ls - ld)
				t.Logf("view %d: dense %.6g sparse %.6g |diff| %.3g (rel %.3g), bound %.3g, thr bound %.3g",
					vi, ld, ls, diff, diff/ld, bound, thrBound)
				tol := bound*(1+1e-4) + 1e-7
				if tc.thr == 0 {
					tol = 0 // every cell stored: the same teacher values
				}
				if diff > tol {
					t.Errorf("view %d: |L_sparse - L_dense| = %g > bound %g", vi, diff, bound)
				}
				if bound > thrBound*(1+1e-9) {
					t.Errorf("view %d: per-cell bound %g > threshold bound %g", vi, bound, thrBound)
				}
			}
			if tc.thr == 0 {
				if unstored != 0 {
					t.Fatalf("threshold 0 left %d cells unstored", unstored)
				}
				return
			}
			if unstored == 0 || stored == 0 {
				t.Fatalf("degenerate test data: %d stored, %d unstored cells", stored, unstored)
			}
		})
	}
}

func TestDense16LossError(t *testing.T) {
	cases := []struct {
		name    string
		classes int
		tol     float64 // relative, loss and gradient norm
	}{
		{"3 classes", 3, 1e-3},
		{"80 classes", 80, 1e-3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(7, uint64(tc.classes)))
			views := synthViews(rng, tc.classes, 64, 2)
			half := roundTrip(t, tc.classes, softtarget.Encoding{Half: true}, views)
			fg, err := distill.NewFineGrained(tc.classes, 1, 1)
			if err != nil {
				t.Fatal(err)
			}
			defer fg.Close()
			l2 := distill.NewL2(1, 1)
			defer l2.Close()
			changed := false
			for vi, v := range views {
				student := perturbed(rng, v.Outputs, 1)
				for _, loss := range []distill.Loss{fg, l2} {
					gd, gh := zeroGrads(student), zeroGrads(student)
					ld, err := loss.Forward(student, asBatch(v.Outputs), gd)
					if err != nil {
						t.Fatal(err)
					}
					lh, err := loss.Forward(student, asBatch(half[vi].Outputs), gh)
					if err != nil {
						t.Fatal(err)
					}
					changed = changed || ld != lh
					rel := math.Abs(lh-ld) / math.Abs(ld)
					nd, nh := norm(gd), norm(gh)
					grel := math.Abs(nh-nd) / nd
					t.Logf("view %d %s: loss rel %.3g, grad norm rel %.3g", vi, loss.Name(), rel, grel)
					if rel > tc.tol || grel > tc.tol {
						t.Errorf("view %d %s: dense16 loss rel error %g, gradient norm rel error %g, want <= %g", vi, loss.Name(), rel, grel, tc.tol)
					}
				}
			}
			if !changed {
				t.Fatal("float16 round trip changed no loss: the test would not see an error")
			}
		})
	}
}

func norm(g [][]float32) float64 {
	var s float64
	for _, x := range g {
		for _, v := range x {
			s += float64(v) * float64(v)
		}
	}
	return math.Sqrt(s)
}

func diffNorm(a, b [][]float32) float64 {
	var s float64
	for i := range a {
		for j := range a[i] {
			d := float64(a[i][j]) - float64(b[i][j])
			s += d * d
		}
	}
	return math.Sqrt(s)
}

// TestSparseErrorReal measures, on real teacher-dump files, the relative
// error of the fine_grained and l2 losses (weight 1) and of their gradients
// for every encoding against dense32. For sparse files the fine_grained loss
// gets the file's stored-cell masks (FineGrained.SetMask), as student-train
// gives them; the l2 column shows what l2 would do with sparse files, which
// student-train refuses. Gated: YOLODISTILL_SPARSE_ERROR=DIR,
// where DIR holds dense32.arrow and any of dense16.arrow,
// sparse32_THR.arrow, sparse16_THR.arrow, all dumped with the same teacher,
// views and seed. The student outputs are the baseline student's head
// outputs on the same views, rebuilt with the training loader of the student
// config (YOLODISTILL_SPARSE_ERROR_CONFIG, default the demo student) with
// the overrides in YOLODISTILL_SPARSE_ERROR_O (space-separated; they must
// give the loader the dump's seed via train.seed and its data options) and
// the checkpoint YOLODISTILL_SPARSE_ERROR_CKPT (default the demo baseline);
// each rebuilt view's augmentation record is checked against the stored one.
// With YOLODISTILL_SPARSE_ERROR_STUDENT=noise the student is instead the
// dense32 teacher outputs plus N(0, 1) noise.
func TestSparseErrorReal(t *testing.T) {
	dir := os.Getenv("YOLODISTILL_SPARSE_ERROR")
	if dir == "" {
		t.Skip("YOLODISTILL_SPARSE_ERROR=DIR not set")
	}
	ref := readAll(t, filepath.Join(dir, "dense32.arrow"))
	meta := ref.meta
	classes := len(meta.Classes)

	var students [][]distill.Tensor
	mode := os.Getenv("YOLODISTILL_SPARSE_ERROR_STUDENT")
	if mode == "noise" {
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range ref.views {
			students = append(students, perturbed(rng, ref.views[i].Outputs, 1))
		}
	} else {
		mode = "baseline student"
		students = realStudent(t, ref.views)
	}

	files, _ := filepath.Glob(filepath.Join(dir, "*.arrow"))
	fg, err := distill.NewFineGrained(classes, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fg.Close()
	l2 := distill.NewL2(1, 0)
	defer l2.Close()
	var table strings.Builder
	fmt.Fprintf(&table, "student: %s; %d views; rel. errors vs dense32 (mean / max over views)\n", mode, len(ref.views))
	fmt.Fprintf(&table, "| encoding | bytes/view | stored cells | fine_grained loss | fine_grained grad | l2 loss | l2 grad |\n|---|---|---|---|---|---|---|\n")
	for _, f := range files {
		enc := readAll(t, f)
		if len(enc.views) != len(ref.views) {
			t.Fatalf("%s: %d views, dense32 has %d", f, len(enc.views), len(ref.views))
		}
		st, _ := os.Stat(f)
		var storedFrac float64
		type acc struct{ sum, max float64 }
		var res [4]acc // fg loss, fg grad, l2 loss, l2 grad
		for i := range ref.views {
			if enc.views[i].ImageID != ref.views[i].ImageID || !bytes.Equal(enc.views[i].Aug, ref.views[i].Aug) {
				t.Fatalf("%s: view %d is not dense32's view %d (other seed?)", f, i, i)
			}
			if enc.views[i].Stored != nil {
				n, c := 0, 0
				for _, s := range enc.views[i].Stored {
					for _, b := range s {
						n++
						if b {
							c++
						}
					}
				}
				storedFrac += float64(c) / float64(n)
			} else {
				storedFrac++
			}
			for li, loss := range []distill.Loss{fg, l2} {
				gd, ge := zeroGrads(students[i]), zeroGrads(students[i])
				ld, err := loss.Forward(students[i], asBatch(ref.views[i].Outputs), gd)
				if err != nil {
					t.Fatal(err)
				}
				if li == 0 && enc.views[i].Stored != nil {
					// As student-train does: box and class terms only at stored cells.
					fg.SetMask(enc.views[i].Stored)
				}
				le, err := loss.Forward(students[i], asBatch(enc.views[i].Outputs), ge)
				fg.SetMask(nil)
				if err != nil {
					t.Fatal(err)
				}
				for j, e := range []float64{math.Abs(le-ld) / math.Abs(ld), diffNorm(ge, gd) / norm(gd)} {
					a := &res[2*li+j]
					a.sum += e
					a.max = max(a.max, e)
				}
			}
		}
		n := float64(len(ref.views))
		fmt.Fprintf(&table, "| %s | %d | %.4f |", strings.TrimSuffix(filepath.Base(f), ".arrow"), st.Size()/int64(len(ref.views)), storedFrac/n)
		for _, a := range res {
			fmt.Fprintf(&table, " %.2e / %.2e |", a.sum/n, a.max)
		}
		table.WriteString("\n")
	}
	// The teacher's objectness distribution, for the synthetic test's model.
	hist := make([]int, 5) // p < 0.01, < 0.1, < 0.5, < 0.9, >= 0.9
	for _, v := range ref.views {
		k := 5 + classes
		for _, o := range v.Outputs {
			a, hw := o.Shape[0]/k, o.Shape[1]*o.Shape[2]
			for ai := 0; ai < a; ai++ {
				for _, x := range o.Data[(ai*k+4)*hw : (ai*k+5)*hw] {
					p := sig(float64(x))
					switch {
					case p < 0.01:
						hist[0]++
					case p < 0.1:
						hist[1]++
					case p < 0.5:
						hist[2]++
					case p < 0.9:
						hist[3]++
					default:
						hist[4]++
					}
				}
			}
		}
	}
	fmt.Fprintf(&table, "teacher objectness cells: p<0.01 %d, [0.01,0.1) %d, [0.1,0.5) %d, [0.5,0.9) %d, >=0.9 %d\n", hist[0], hist[1], hist[2], hist[3], hist[4])
	t.Log("\n" + table.String())
}

type fileViews struct {
	meta  softtarget.Meta
	views []*softtarget.View
}

func readAll(t *testing.T, path string) fileViews {
	t.Helper()
	r, err := softtarget.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	return fileViews{meta: r.Meta(), views: softtargettest.ReadAll(t, r)}
}

// realStudent runs the baseline student on the views, rebuilt by the
// training loader (same seed and batch size as the dump).
func realStudent(t *testing.T, views []*softtarget.View) [][]distill.Tensor {
	t.Helper()
	cfgPath := envOr("YOLODISTILL_SPARSE_ERROR_CONFIG", "../../pipelines/configs/demo_student.yml")
	ckpt := envOr("YOLODISTILL_SPARSE_ERROR_CKPT", "../../out/demo/baseline/model_final.ckpt")
	cfg, err := config.Load(cfgPath, strings.Fields(os.Getenv("YOLODISTILL_SPARSE_ERROR_O")))
	if err != nil {
		t.Fatal(err)
	}
	det, _, err := detector.Load(context.Background(), cfg, ckpt, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	src, err := train.OpenLoader(ctx, cfg, nil, augment.Shard{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var out [][]distill.Tensor
	for len(out) < len(views) {
		b, err := src.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n, size := len(b.Items), b.Size
		outs, shapes, err := det.Predict(b.Images, n, size, size)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < n && len(out) < len(views); i++ {
			v := views[len(out)]
			rec, err := b.Items[i].Record.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(rec, v.Aug) || v.InputH != size {
				t.Fatalf("view %d (image %d): the loader's view differs from the dump's (seed, batch size or data overrides?)", len(out), v.ImageID)
			}
			var ts []distill.Tensor
			for s, sh := range shapes {
				per := sh[1] * sh[2] * sh[3]
				ts = append(ts, distill.Tensor{Name: fmt.Sprint("head", s), Shape: []int{1, sh[1], sh[2], sh[3]},
					Data: append([]float32(nil), outs[s][i*per:(i+1)*per]...)})
			}
			out = append(out, ts)
		}
	}
	return out
}

func envOr(k, d string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return d
}

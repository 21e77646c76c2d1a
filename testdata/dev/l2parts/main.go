// Command l2parts splits the L2 distillation term (PaddleDetection's VOC
// recipe: weight x the sum over the three head outputs of mean((s - t)^2) on
// the raw values) into where it comes from: per head, per channel group (x/y,
// w/h, objectness, class logits) and per cell kind (background: the teacher's
// objectness below 1%; foreground: the rest), for students against a
// teacher on the first images of a test split at one input size. It also
// prints the teacher's raw values per group (mean, root mean square).
//
// A development tool (kept under testdata so that ./... leaves it out):
//
//	go run -tags 'openblas dnnl' ./testdata/dev/l2parts -size 320 \
//	    -root path/to/BCCD TEACHER.ckpt STUDENT.ckpt...
//
// Checkpoints carry their configurations; -root replaces data.root.
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"

	"yolodistill/pkg/dataset"
	"yolodistill/pkg/detector"
)

var groups = []string{"xy", "wh", "obj", "cls"}

func group(c int) int {
	switch {
	case c < 2:
		return 0
	case c < 4:
		return 1
	case c == 4:
		return 2
	}
	return 3
}

func main() {
	size := flag.Int("size", 320, "square input size")
	nimg := flag.Int("images", 32, "images of the split")
	root := flag.String("root", "", "data.root of the checkpoints' configurations")
	split := flag.String("split", "test", "split")
	weight := flag.Float64("weight", 100, "the L2 weight")
	flag.Parse()
	if flag.NArg() < 2 {
		fmt.Fprintln(os.Stderr, "usage: l2parts [-size N] [-root DIR] TEACHER.ckpt STUDENT.ckpt...")
		os.Exit(2)
	}
	if err := run(*size, *nimg, *root, *split, *weight, flag.Arg(0), flag.Args()[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "l2parts:", err)
		os.Exit(1)
	}
}

func load(path, root string) (*detector.Detector, error) {
	var ov []string
	if root != "" {
		ov = []string{"data.root=" + root}
	}
	cfg, err := detector.LoadConfig("", path, ov)
	if err != nil {
		return nil, err
	}
	d, _, err := detector.Load(context.Background(), cfg, path, "")
	return d, err
}

func run(size, nimg int, root, split string, weight float64, teacher string, students []string) error {
	t, err := load(teacher, root)
	if err != nil {
		return err
	}
	sp, err := dataset.OpenSplit(t.Config, split, dataset.SplitOptions{})
	if err != nil {
		return err
	}
	nimg = min(nimg, sp.Source.Len())
	imgs := make([]*dataset.Image, nimg)
	for i := range imgs {
		if imgs[i], _, err = sp.Source.Load(i); err != nil {
			return err
		}
	}
	input, err := t.EvalInput(imgs, size)
	if err != nil {
		return err
	}
	outs, shapes, err := t.Predict(input, nimg, size, size)
	if err != nil {
		return err
	}
	tc := make([][]float32, len(outs))
	for i := range outs {
		tc[i] = append([]float32(nil), outs[i]...)
	}
	K := 5 + t.Config.Model.NumClasses
	// visit calls f(head, index, channel group, foreground) for every value.
	visit := func(f func(h, i, g, fg int)) {
		for h, s := range shapes {
			n, ch, hw := s[0], s[1], s[2]*s[3]
			for b := 0; b < n; b++ {
				for a := 0; a < ch/K; a++ {
					for p := 0; p < hw; p++ {
						fg := 0
						if obj := float64(tc[h][(b*ch+a*K+4)*hw+p]); 1/(1+math.Exp(-obj)) >= 0.01 {
							fg = 1
						}
						for k := 0; k < K; k++ {
							f(h, (b*ch+a*K+k)*hw+p, group(k), fg)
						}
					}
				}
			}
		}
	}
	fmt.Printf("%s at %d px, %d images: teacher raw values (background = teacher objectness < 1%%)\n", teacher, size, nimg)
	type acc struct{ sum, sq, n [4][2]float64 }
	st := make([]acc, len(shapes))
	visit(func(h, i, g, fg int) {
		v := float64(tc[h][i])
		st[h].sum[g][fg] += v
		st[h].sq[g][fg] += v * v
		st[h].n[g][fg]++
	})
	for h := range shapes {
		for g, name := range groups {
			a := &st[h]
			fmt.Printf("  head %d %-3s background mean %7.2f rms %6.2f (%d values) | foreground mean %7.2f rms %6.2f (%d)\n", h, name,
				a.sum[g][0]/max(a.n[g][0], 1), math.Sqrt(a.sq[g][0]/max(a.n[g][0], 1)), int(a.n[g][0]),
				a.sum[g][1]/max(a.n[g][1], 1), math.Sqrt(a.sq[g][1]/max(a.n[g][1], 1)), int(a.n[g][1]))
		}
	}
	for _, path := range students {
		s, err := load(path, root)
		if err != nil {
			return err
		}
		so, _, err := s.Predict(input, nimg, size, size)
		if err != nil {
			return err
		}
		se := make([][4][2]float64, len(shapes))
		var objFG, objFGn, fgTotal float64 // student - teacher objectness logit on foreground cells
		visit(func(h, i, g, fg int) {
			d := float64(so[h][i] - tc[h][i])
			se[h][g][fg] += d * d
			if g == 2 && fg == 1 {
				objFG += d
				objFGn++
			}
		})
		fmt.Printf("%s: the L2 term (weight %g) per head and group, background/foreground\n", path, weight)
		var total, bg float64
		for h := range shapes {
			n := float64(len(tc[h]))
			line, ht := "", 0.0
			for g, name := range groups {
				b, f := weight*se[h][g][0]/n, weight*se[h][g][1]/n
				line += fmt.Sprintf("  %s %.2f/%.2f", name, b, f)
				ht += b + f
				bg += b
				fgTotal += f
			}
			total += ht
			fmt.Printf("  head %d %7.2f:%s\n", h, ht, line)
		}
		fmt.Printf("  total %.2f, background %.1f%%, foreground %.2f; objectness logit on foreground cells: student - teacher %+.2f on average\n",
			total, 100*bg/max(total, 1e-30), fgTotal, objFG/max(objFGn, 1))
	}
	return nil
}

package metrics

import (
	"math"
	"testing"

	"yolodistill/pkg/box"
)

func bx(x0, y0, x1, y1 float64) box.Box { return box.Box{X0: x0, Y0: y0, X1: x1, Y1: y1} }

// Hand-computed cases. Each comment gives the sorted records and the sums.
func TestEvaluateVOC(t *testing.T) {
	// Class 0, three objects in two images:
	//  .9 TP (img0, exact G1), .8 FP (img0, duplicate on G1), .7 TP (img1), .6 FP (img1, far away)
	//  precision 1, 1/2, 2/3, 1/2; recall 1/3, 1/3, 2/3, 2/3
	//  integral: 1*(1/3) + (2/3)*(1/3) = 5/9
	//  11point: recall>=0,.1,.2,.3 -> 1; >=.4,.5,.6 -> 2/3; >=.7.. -> 0: (4+2)/11
	caseA := []VOCImage{
		{Objects: []VOCObject{{Box: bx(0, 0, 10, 10)}, {Box: bx(20, 20, 30, 30)}}},
		{Objects: []VOCObject{{Box: bx(0, 0, 10, 10)}}},
	}
	detsA := []VOCDetection{
		{Image: 0, Box: bx(0, 0, 10, 10), Score: .9},
		{Image: 0, Box: bx(0, 0, 10, 9), Score: .8},
		{Image: 1, Box: bx(0, 0, 10, 10), Score: .7},
		{Image: 1, Box: bx(50, 50, 60, 60), Score: .6},
	}
	// Difficult: G1 normal, G2 difficult, one image.
	//  .95 FP (far), .9 on G2 (ignored), .8 TP on G1.
	//  default: count 1; records FP, TP: precision 0, 1/2; recall 0, 1 -> integral 1/2, 11point 1/2
	//  EvaluateDifficult: count 2; records FP, TP, TP: precision 0, 1/2, 2/3; recall 0, 1/2, 1
	//    integral 1/2*1/2 + 2/3*1/2 = 7/12; 11point: every level -> 2/3
	caseB := []VOCImage{{Objects: []VOCObject{{Box: bx(0, 0, 10, 10)}, {Box: bx(20, 20, 30, 30), Difficult: true}}}}
	detsB := []VOCDetection{
		{Image: 0, Box: bx(40, 40, 50, 50), Score: .95},
		{Image: 0, Box: bx(20, 20, 30, 30), Score: .9},
		{Image: 0, Box: bx(0, 0, 10, 10), Score: .8},
	}
	// Equal scores in two images keep image order: img0's FP before img1's TP:
	//  precision 0, 1/2; recall 0, 1 -> integral 1/2 (1 if the order were reversed)
	caseTie := []VOCImage{{}, {Objects: []VOCObject{{Box: bx(0, 0, 10, 10)}}}}
	detsTie := []VOCDetection{
		{Image: 1, Box: bx(0, 0, 10, 10), Score: .5},
		{Image: 0, Box: bx(0, 0, 10, 10), Score: .5},
	}
	// Three classes: class 0 is case A; class 1 has detections but no ground
	// truth; class 2 has ground truth but no detection. Both are left out of
	// the mean (PaddleDetection's rule), so mAP = AP of class 0.
	caseC := []VOCImage{
		{Objects: []VOCObject{{Box: bx(0, 0, 10, 10)}, {Box: bx(20, 20, 30, 30)}, {Box: bx(5, 5, 9, 9), Label: 2}}},
		{Objects: []VOCObject{{Box: bx(0, 0, 10, 10)}}},
	}
	detsC := append([]VOCDetection{{Image: 1, Label: 1, Box: bx(0, 0, 10, 10), Score: .99}}, detsA...)
	// PlusOne (inclusive pixel boxes): gt [0,9]x[0,9] is 10x10 px; det [0,4]x[0,9]
	// is 5x10 px: IoU exactly 0.5, not > 0.5, so a false positive; det [0,5]x[0,9]
	// (IoU 0.6) is a true positive. Records .9 FP, .8 TP: precision 0, 1/2; recall 0, 1.
	casePlus := []VOCImage{{Objects: []VOCObject{{Box: bx(0, 0, 9, 9)}}}}
	detsPlus := []VOCDetection{
		{Image: 0, Box: bx(0, 0, 4, 9), Score: .9},
		{Image: 0, Box: bx(0, 0, 5, 9), Score: .8},
	}

	cases := []struct {
		name    string
		gt      []VOCImage
		dets    []VOCDetection
		p       VOCParams
		wantMAP float64
		wantAP  []float64
		tol     float64
	}{
		{"A integral", caseA, detsA, VOCParams{NumClasses: 1, Mode: VOCIntegral}, 5.0 / 9, []float64{5.0 / 9}, 1e-12},
		{"A 11point", caseA, detsA, VOCParams{NumClasses: 1, Mode: VOC11Point}, 6.0 / 11, []float64{6.0 / 11}, 1e-12},
		{"difficult integral", caseB, detsB, VOCParams{NumClasses: 1, Mode: VOCIntegral}, 0.5, []float64{0.5}, 1e-12},
		{"difficult 11point", caseB, detsB, VOCParams{NumClasses: 1, Mode: VOC11Point}, 0.5, []float64{0.5}, 1e-12},
		{"difficult evaluated integral", caseB, detsB, VOCParams{NumClasses: 1, Mode: VOCIntegral, EvaluateDifficult: true}, 7.0 / 12, []float64{7.0 / 12}, 1e-12},
		{"difficult evaluated 11point", caseB, detsB, VOCParams{NumClasses: 1, Mode: VOC11Point, EvaluateDifficult: true}, 2.0 / 3, []float64{2.0 / 3}, 1e-12},
		{"tie keeps image order", caseTie, detsTie, VOCParams{NumClasses: 1, Mode: VOCIntegral}, 0.5, []float64{0.5}, 1e-12},
		{"classes without gt or dets", caseC, detsC, VOCParams{NumClasses: 3, Mode: VOCIntegral}, 5.0 / 9, []float64{5.0 / 9, -1, -1}, 1e-12},
		{"plus one", casePlus, detsPlus, VOCParams{NumClasses: 1, Mode: VOCIntegral, PlusOne: true}, 0.5, []float64{0.5}, 1e-12},
		{"no detections", caseA, nil, VOCParams{NumClasses: 1}, 0, []float64{-1}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := EvaluateVOC(tc.gt, tc.dets, tc.p)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(res.MAP-tc.wantMAP) > tc.tol {
				t.Errorf("mAP = %.15g, want %.15g", res.MAP, tc.wantMAP)
			}
			for c, want := range tc.wantAP {
				if math.Abs(res.AP[c]-want) > tc.tol {
					t.Errorf("AP[%d] = %.15g, want %.15g", c, res.AP[c], want)
				}
				if res.Valid[c] != (want >= 0) {
					t.Errorf("Valid[%d] = %v", c, res.Valid[c])
				}
			}
		})
	}
}

func TestPaddleJaccard(t *testing.T) {
	cases := []struct {
		name     string
		pred, gt box.Box
		plusOne  bool
		want     float64
	}{
		{"half-open half", bx(0, 0, 5, 10), bx(0, 0, 10, 10), false, 0.5},
		{"inclusive half", bx(0, 0, 4, 9), bx(0, 0, 9, 9), true, 0.5},
		{"inclusive same as half-open shifted", bx(2, 3, 11, 12), bx(0, 0, 9, 9), true, 56.0 / 144}, // 8x7 px overlap of two 10x10 px boxes
		{"half-open of the same pixels", bx(2, 3, 12, 13), bx(0, 0, 10, 10), false, 56.0 / 144},
		{"touching is no overlap", bx(9, 0, 20, 9), bx(0, 0, 9, 9), true, 0},
		{"disjoint", bx(20, 20, 30, 30), bx(0, 0, 10, 10), false, 0},
	}
	for _, tc := range cases {
		if got := paddleJaccard(tc.pred, tc.gt, tc.plusOne); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("%s: got %.15g, want %.15g", tc.name, got, tc.want)
		}
	}
}

func TestEvaluateVOCErrors(t *testing.T) {
	gt := []VOCImage{{Objects: []VOCObject{{Box: bx(0, 0, 1, 1)}}}}
	cases := []struct {
		name string
		gt   []VOCImage
		dets []VOCDetection
		p    VOCParams
	}{
		{"no classes", gt, nil, VOCParams{}},
		{"label out of range", gt, []VOCDetection{{Label: 3, Score: 1}}, VOCParams{NumClasses: 1}},
		{"image out of range", gt, []VOCDetection{{Image: 1, Score: 1}}, VOCParams{NumClasses: 1}},
		{"NaN score", gt, []VOCDetection{{Score: math.NaN()}}, VOCParams{NumClasses: 1}},
		{"gt label out of range", []VOCImage{{Objects: []VOCObject{{Label: -1}}}}, nil, VOCParams{NumClasses: 1}},
	}
	for _, tc := range cases {
		if _, err := EvaluateVOC(tc.gt, tc.dets, tc.p); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

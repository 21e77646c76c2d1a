package train

import (
	"context"
	"path/filepath"
	"testing"

	"yolodistill/pkg/augment"
	"yolodistill/pkg/checkpoint"
	"yolodistill/pkg/config"
	"yolodistill/pkg/detector"
	"yolodistill/pkg/metrics"
	"yolodistill/pkg/yolo/decode"
)

// TestOverfitDetects: the whole chain (loop, checkpoint, Detector, decode,
// VOC AP) works: after 150 steps on one fixed batch of two images, the final
// checkpoint finds their objects (mAP near 1), and an untrained model does not.
func TestOverfitDetects(t *testing.T) {
	cfg := tinyConfig(t, "train.max_iters=150", "train.snapshot_iter=1000", "train.base_lr=0.002")
	b := fixedBatch(t, cfg)
	dir := t.TempDir()
	res, err := Run(context.Background(), Options{
		Config: cfg, OutDir: dir,
		Open: func(context.Context, *config.Config, []byte, augment.Shard) (Source, error) {
			return fixedSource{b}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	recs := readRecords(t, filepath.Join(dir, MetricsFile))
	score := func(d *detector.Detector) float64 {
		pl := []decode.Placement{decode.Stretch(64, 64, 64, 64), decode.Stretch(64, 64, 64, 64)}
		dets, err := d.Detect(b.Images, 2, 64, 64, pl)
		if err != nil {
			t.Fatal(err)
		}
		var imgs []metrics.VOCImage
		var vd []metrics.VOCDetection
		for i, it := range b.Items {
			var im metrics.VOCImage
			for _, tg := range it.Targets {
				im.Objects = append(im.Objects, metrics.VOCObject{Box: tg.Box, Label: tg.Label})
			}
			imgs = append(imgs, im)
			for _, s := range dets[i] {
				vd = append(vd, metrics.VOCDetection{Image: i, Label: s.Label, Box: s.Box, Score: s.Score})
			}
		}
		r, err := metrics.EvaluateVOC(imgs, vd, metrics.VOCParams{NumClasses: 8})
		if err != nil {
			t.Fatal(err)
		}
		return r.MAP
	}
	d0, _ := detector.New(cfg)
	d1, _ := detector.New(cfg)
	c, _ := checkpoint.Load(res.Checkpoint)
	if err := d1.LoadCheckpoint(c); err != nil {
		t.Fatal(err)
	}
	before, after := score(d0), score(d1)
	t.Logf("VOC mAP on the training batch (%d objects): untrained %.3f, trained %.3f", len(b.Items[0].Targets)+len(b.Items[1].Targets), before, after)
	if !(after > 0.9 && before < 0.1) {
		t.Errorf("mAP on the fitted batch: untrained %.3f (want < 0.1), trained %.3f (want > 0.9)", before, after)
	}
	if last := recs[len(recs)-1].Loss; !(last < 0.25*recs[0].Loss) {
		t.Errorf("loss %g -> %g: did not fall to a quarter", recs[0].Loss, last)
	}
}

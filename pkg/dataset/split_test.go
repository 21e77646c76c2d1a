package dataset

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"yolodistill/pkg/config"
)

// splitConfig is the synthetic student preset on a 100-image set of 64 px
// images (10 per split but train).
func splitConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Load(filepath.Join("..", "..", "pipelines", "configs", "synth_student.yml"),
		[]string{"data.synth.num_images=100", "data.synth.image_size=64"})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestOpenSplitSynth(t *testing.T) {
	for _, budget := range []int64{SynthCacheBytes, 0} {
		t.Run(fmt.Sprintf("cache %d bytes", budget), func(t *testing.T) { testOpenSplitSynth(t, budget) })
	}
}

func testOpenSplitSynth(t *testing.T, budget int64) {
	cfg := splitConfig(t)
	old := SynthCacheBytes
	SynthCacheBytes = budget
	sp, err := OpenSplit(cfg, "val", SplitOptions{})
	SynthCacheBytes = old
	if err != nil {
		t.Fatal(err)
	}
	if cached := sp.Source.(synthSource).imgs != nil; cached != (budget > 0) {
		t.Errorf("budget %d: images cached = %v", budget, cached)
	}
	if got := sp.Source.Len(); got != 10 || len(sp.DS.Samples) != 10 {
		t.Fatalf("val split: %d images (%d samples), want 10", got, len(sp.DS.Samples))
	}
	opts := SynthOptionsOf(cfg)
	for i, s := range sp.DS.Samples {
		if SynthSplit(int(s.ID)) != "val" {
			t.Errorf("sample %d (id %d) is not a val image", i, s.ID)
		}
		img, tg, err := sp.Source.Load(i)
		if err != nil {
			t.Fatal(err)
		}
		_, want := SynthImage(opts, int(s.ID))
		if img.W != 64 || img.H != 64 || string(img.Pix) != string(want.Pix) {
			t.Errorf("sample %d: image differs from SynthImage(%d)", i, s.ID)
		}
		if len(tg) != len(s.Objects) {
			t.Errorf("sample %d: %d targets for %d objects", i, len(tg), len(s.Objects))
		}
	}
	if _, err := OpenSplit(cfg, "nope", SplitOptions{}); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("unknown synthetic split: %v", err)
	}
	cfg.Data.Format = "voc"
	_, err = OpenSplit(cfg, "test", SplitOptions{Root: filepath.Join(t.TempDir(), "missing")})
	if err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing VOC folder: %v", err)
	}
}

// A synthetic set written to disk by WriteSynth (VOC and COCO layouts) opens
// as the same samples as the in-memory one.
func TestOpenSplitSynthFolders(t *testing.T) {
	cfg := splitConfig(t)
	mem, err := OpenSplit(cfg, "test", SplitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"voc", "coco"} {
		dir := filepath.Join(t.TempDir(), format)
		if _, err := WriteSynth(context.Background(), dir, format, SynthOptionsOf(cfg), 2); err != nil {
			t.Fatal(err)
		}
		sp, err := OpenSplit(cfg, "test", SplitOptions{Root: dir})
		if err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		if len(sp.DS.Samples) != len(mem.DS.Samples) {
			t.Fatalf("%s: %d samples, in memory %d", format, len(sp.DS.Samples), len(mem.DS.Samples))
		}
		for i, s := range sp.DS.Samples {
			m := mem.DS.Samples[i]
			if len(s.Objects) != len(m.Objects) || s.Width != m.Width {
				t.Errorf("%s sample %d: %d objects %dpx, in memory %d objects %dpx", format, i, len(s.Objects), s.Width, len(m.Objects), m.Width)
			}
		}
		if _, _, err := sp.Source.Load(0); err != nil {
			t.Errorf("%s: load: %v", format, err)
		}
	}
}

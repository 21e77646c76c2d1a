package teacher

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"yolodistill/pkg/augment"
	"yolodistill/pkg/config"
)

// TestReplayVerifiesPixels: soft targets dumped from other pictures under
// the same file names (the synthetic set of another data.synth.seed) stop
// offline training at the first view, naming the image, the view and the
// setting that differs; the same pictures replay.
func TestReplayVerifiesPixels(t *testing.T) {
	opt := tinyTeacher(t)
	opt.StudentConfig = studentYML
	opt.Out = filepath.Join(t.TempDir(), "seed1.arrow")
	opt.Shard, opt.Shards = 0, 4
	dump(t, opt)
	for _, c := range []struct {
		name, seed string
		want       []string // substrings of the error; none: the first batch replays
	}{
		{"same pictures", "3", nil}, // teacher.yml's seed
		{"other pictures", "4", []string{"image ", "view 0", "the view rebuilt here is not the one the teacher saw",
			`data.synth.seed was "3" for the dump, is "4" here`, "stopped at the first such view"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			st, err := config.Load(studentYML, []string{"data.synth.seed=" + c.seed})
			if err != nil {
				t.Fatal(err)
			}
			var log strings.Builder
			s, err := Setup(context.Background(), Options{Student: st, Inputs: []string{opt.Out},
				Log: func(f string, a ...any) { log.WriteString(f + "\n") }})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			src, err := s.open(context.Background(), st, nil, augment.Shard{})
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			_, err = src.Next(context.Background())
			if c.want == nil {
				if err != nil {
					t.Fatalf("same pictures: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("other pictures replayed without an error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

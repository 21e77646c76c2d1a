package teacher

import (
	"context"
	"slices"
	"sort"
	"strings"
	"testing"

	"yolodistill/pkg/config"
	"yolodistill/pkg/detector"
	"yolodistill/pkg/distill"
	"yolodistill/pkg/yolo"
)

// The tiny configurations of the teacher-dump and student-train tests.
const (
	teacherYML      = "../../tools/teacher-dump/testdata/teacher.yml"
	studentYML      = "../../tools/teacher-dump/testdata/student.yml"
	studentPairsYML = "../../tools/teacher-dump/testdata/student_pairs.yml"
)

// TestCreateParamsMatchesLazyAdapters: the adapters Init makes before
// any training graph (for resuming) are the ones a training graph makes.
func TestCreateParamsMatchesLazyAdapters(t *testing.T) {
	st, err := config.Load(studentPairsYML, nil)
	if err != nil {
		t.Fatal(err)
	}
	tc, _ := config.Load(teacherYML, nil)
	tspec, err := yolo.FromModelConfig(tc.Model)
	if err != nil {
		t.Fatal(err)
	}
	params := func(early bool) map[string][]float32 {
		rec, err := distill.NewRecipe(st.Distill, 3, 3, 1)
		if err != nil {
			t.Fatal(err)
		}
		defer rec.Close()
		d := distill.NewStudent(rec, NewOffline(rec, tspec), st.Model.AnchorMasks)
		det, err := detector.New(st)
		if err != nil {
			t.Fatal(err)
		}
		if early {
			if err := d.Init(det); err != nil {
				t.Fatal(err)
			}
		} else {
			det.OnBuild = d.Attach
			if _, err := det.Net(2, 64, 64, true); err != nil {
				t.Fatal(err)
			}
		}
		out := map[string][]float32{}
		for _, p := range det.Params.Params() {
			if strings.HasPrefix(p.Name, "distill.") {
				out[p.Name] = p.Data
			}
		}
		return out
	}
	early, lazy := params(true), params(false)
	w := early["distill.pair.0.adapter.0.weight"]
	if len(early) != 2 || len(w) != 32*64 || len(early["distill.pair.0.adapter.0.bias"]) != 32 {
		t.Fatalf("adapter parameters %v", keys(early))
	}
	for k, v := range early {
		if !slices.Equal(v, lazy[k]) {
			t.Errorf("%s differs between Init and a training graph", k)
		}
	}
}

func keys(m map[string][]float32) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// The fine-grained distillation needs the student's own loss on the
// fine-grained path, as PaddleDetection's distill.py does; the error says how.
func TestFineGrainedNeedsFineGrainedLoss(t *testing.T) {
	for _, loss := range []string{"fine_grained", "l2+fine_grained"} {
		st, err := config.Load(studentYML, []string{"loss.use_fine_grained_loss=false", "distill.loss=" + loss})
		if err != nil {
			t.Fatal(err)
		}
		_, err = Setup(context.Background(), Options{Student: st, Inputs: []string{"unused.arrow"}})
		if err == nil || !strings.Contains(err.Error(), "-o loss.use_fine_grained_loss=true") {
			t.Fatalf("%s without use_fine_grained_loss: %v", loss, err)
		}
	}
}

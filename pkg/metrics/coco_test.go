package metrics

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// fixtureDir is ../shared/fixtures/coco-eval seen from the repository root.
const fixtureDir = "../../../shared/fixtures/coco-eval"

type expectedCase struct {
	GT    string    `json:"gt"`
	DT    string    `json:"dt"`
	Stats []float64 `json:"stats"`
}

func loadExpected(t testing.TB) map[string]expectedCase {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(fixtureDir, "expected_stats.json"))
	if os.IsNotExist(err) {
		t.Skipf("fixture folder %s is absent (it lives in ../shared beside the repository)", fixtureDir)
	}
	if err != nil {
		t.Fatal(err)
	}
	var exp map[string]expectedCase
	if err := json.Unmarshal(data, &exp); err != nil {
		t.Fatal(err)
	}
	return exp
}

func loadCase(t testing.TB, c expectedCase) (*GroundTruth, []Detection) {
	t.Helper()
	gt, err := ReadCOCOGroundTruth(filepath.Join(fixtureDir, c.GT))
	if err != nil {
		t.Fatal(err)
	}
	dets, err := ReadCOCOResults(filepath.Join(fixtureDir, c.DT), gt)
	if err != nil {
		t.Fatal(err)
	}
	return gt, dets
}

// TestCOCOFixtures compares the 12 stats with what pycocotools printed
// (expected_stats.json keeps 6 decimals, so the tolerance is 1e-6).
func TestCOCOFixtures(t *testing.T) {
	exp := loadExpected(t)
	for _, name := range []string{"tiny", "val2014_100"} {
		c, ok := exp[name]
		if !ok {
			t.Fatalf("case %s missing from expected_stats.json", name)
		}
		t.Run(name, func(t *testing.T) {
			gt, dets := loadCase(t, c)
			res, err := EvaluateCOCO(gt, dets, DefaultCOCOParams())
			if err != nil {
				t.Fatal(err)
			}
			const tol = 1e-6
			for i, want := range c.Stats {
				if got := res.Stats[i]; math.Abs(got-want) > tol {
					t.Errorf("stats[%d] = %.7f, want %.6f (tol %g)", i, got, want, tol)
				}
			}
		})
	}
}

// TestWriteCOCOResultsRoundTrip: written results read back to the same values.
func TestWriteCOCOResultsRoundTrip(t *testing.T) {
	dets := []Detection{
		{ImageID: 1, CategoryID: 3, BBox: [4]float64{0.1, 2, 1e-7, 123456.789}, Score: 0.3},
		{ImageID: 2, CategoryID: 1, BBox: [4]float64{0, 0, 5, 5}, Score: 1.0 / 3},
	}
	var b strings.Builder
	if err := WriteCOCOResults(&b, dets); err != nil {
		t.Fatal(err)
	}
	got, err := ParseCOCOResults("mem", []byte(b.String()), nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	if !reflect.DeepEqual(got, dets) {
		t.Errorf("round trip: got %v, want %v", got, dets)
	}
	var empty strings.Builder
	if err := WriteCOCOResults(&empty, nil); err != nil || empty.String() != "[]\n" {
		t.Errorf("empty: %q, %v", empty.String(), err)
	}
	if err := WriteCOCOResults(&b, []Detection{{Score: math.NaN()}}); err == nil {
		t.Error("NaN score written")
	}
}

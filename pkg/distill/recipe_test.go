package distill

import (
	"slices"
	"strings"
	"testing"

	"yolodistill/pkg/config"
)

func TestNewRecipe(t *testing.T) {
	pairs := []config.PairConfig{
		{Student: "backbone.c4", Teacher: "backbone.c4", Kind: "l2", Adapter: true, Weight: 2},
		{Student: "head.0.route", Teacher: "backbone.c5", Kind: "kl", Weight: 0.5},
	}
	tests := []struct {
		name     string
		dc       config.DistillConfig
		terms    []string  // term names
		weights  []float64 // each term's loss weight
		student  [][]Ref
		teacher  [][]Ref
		adapter  [][]bool
		features []string
	}{
		{name: "none", dc: config.DistillConfig{Loss: "none"}},
		{name: "l2 heads", dc: config.DistillConfig{Loss: "l2", Weight: 100},
			terms: []string{"distill.l2"}, weights: []float64{100},
			student: [][]Ref{{HeadRef(0), HeadRef(1), HeadRef(2)}}, teacher: [][]Ref{{HeadRef(0), HeadRef(1), HeadRef(2)}},
			adapter: [][]bool{{false, false, false}}},
		{name: "fine_grained default weight", dc: config.DistillConfig{Loss: "fine_grained"},
			terms: []string{"distill.fine_grained"}, weights: []float64{1000},
			student: [][]Ref{{HeadRef(0), HeadRef(1), HeadRef(2)}}, teacher: [][]Ref{{HeadRef(0), HeadRef(1), HeadRef(2)}},
			adapter: [][]bool{{false, false, false}}},
		{name: "soft_label on heads", dc: config.DistillConfig{Loss: "soft_label", Weight: 3, StudentTemperature: 2, TeacherTemperature: 4},
			terms: []string{"distill.soft_label"}, weights: []float64{3},
			student: [][]Ref{{HeadRef(0), HeadRef(1), HeadRef(2)}}, teacher: [][]Ref{{HeadRef(0), HeadRef(1), HeadRef(2)}},
			adapter: [][]bool{{false, false, false}}},
		{name: "fsp takes pairs two by two", dc: config.DistillConfig{Loss: "fsp", Weight: 1, Pairs: pairs},
			terms: []string{"distill.fsp"}, weights: []float64{1},
			student:  [][]Ref{{NamedRef("backbone.c4"), NamedRef("head.0.route")}},
			teacher:  [][]Ref{{NamedRef("backbone.c4"), NamedRef("backbone.c5")}},
			adapter:  [][]bool{{true, false}},
			features: []string{"backbone.c4", "backbone.c5"}},
		{name: "pairs weight product", dc: config.DistillConfig{Loss: "pairs", Weight: 10, Pairs: pairs},
			terms: []string{"distill.pair.0", "distill.pair.1"}, weights: []float64{20, 5},
			student:  [][]Ref{{NamedRef("backbone.c4")}, {NamedRef("head.0.route")}},
			teacher:  [][]Ref{{NamedRef("backbone.c4")}, {NamedRef("backbone.c5")}},
			adapter:  [][]bool{{true}, {false}},
			features: []string{"backbone.c4", "backbone.c5"}},
		{name: "pair of weight 0 dropped", dc: config.DistillConfig{Loss: "pairs", Weight: 1, Pairs: []config.PairConfig{pairs[0], {Student: "a", Teacher: "b", Kind: "l1"}}},
			terms: []string{"distill.pair.0"}, weights: []float64{2},
			student: [][]Ref{{NamedRef("backbone.c4")}}, teacher: [][]Ref{{NamedRef("backbone.c4")}},
			adapter: [][]bool{{true}}, features: []string{"backbone.c4"}},
		{name: "l2+fine_grained with weights", dc: config.DistillConfig{Loss: "l2+fine_grained", Weight: 7, Weights: []float64{100, 1000}},
			terms: []string{"distill.l2", "distill.fine_grained"}, weights: []float64{100, 1000},
			student: [][]Ref{{HeadRef(0), HeadRef(1), HeadRef(2)}, {HeadRef(0), HeadRef(1), HeadRef(2)}},
			teacher: [][]Ref{{HeadRef(0), HeadRef(1), HeadRef(2)}, {HeadRef(0), HeadRef(1), HeadRef(2)}},
			adapter: [][]bool{{false, false, false}, {false, false, false}}},
		{name: "combined, default weights, spaces", dc: config.DistillConfig{Loss: "fine_grained + l2", Weight: 7},
			terms: []string{"distill.fine_grained", "distill.l2"}, weights: []float64{1000, 100},
			student: [][]Ref{{HeadRef(0), HeadRef(1), HeadRef(2)}, {HeadRef(0), HeadRef(1), HeadRef(2)}},
			teacher: [][]Ref{{HeadRef(0), HeadRef(1), HeadRef(2)}, {HeadRef(0), HeadRef(1), HeadRef(2)}},
			adapter: [][]bool{{false, false, false}, {false, false, false}}},
		{name: "combined with pairs, part of weight 0 dropped", dc: config.DistillConfig{Loss: "l2+pairs", Weights: []float64{0, 10}, Pairs: pairs},
			terms: []string{"distill.pair.0", "distill.pair.1"}, weights: []float64{20, 5},
			student:  [][]Ref{{NamedRef("backbone.c4")}, {NamedRef("head.0.route")}},
			teacher:  [][]Ref{{NamedRef("backbone.c4")}, {NamedRef("backbone.c5")}},
			adapter:  [][]bool{{true}, {false}},
			features: []string{"backbone.c4", "backbone.c5"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewRecipe(tt.dc, 3, 20, 1)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if len(r.Terms) != len(tt.terms) {
				t.Fatalf("%d terms, want %d", len(r.Terms), len(tt.terms))
			}
			for i, term := range r.Terms {
				w := term.Loss.(interface{ Weight() float64 }).Weight()
				if term.Name != tt.terms[i] || w != tt.weights[i] || !slices.Equal(term.Student, tt.student[i]) ||
					!slices.Equal(term.Teacher, tt.teacher[i]) || !slices.Equal(term.Adapter, tt.adapter[i]) {
					t.Errorf("term %d: %s weight %v student %v teacher %v adapter %v", i, term.Name, w, term.Student, term.Teacher, term.Adapter)
				}
			}
			if got := r.TeacherFeatures(); !slices.Equal(got, tt.features) {
				t.Errorf("teacher features %v, want %v", got, tt.features)
			}
		})
	}
}

func TestNewRecipeErrors(t *testing.T) {
	one := []config.PairConfig{{Student: "a", Teacher: "b", Kind: "l2", Weight: 1}}
	tests := []struct {
		name string
		dc   config.DistillConfig
		want string
	}{
		{"fsp odd", config.DistillConfig{Loss: "fsp", Pairs: one}, "even, non-zero number"},
		{"pairs empty", config.DistillConfig{Loss: "pairs"}, "distill.pairs is empty"},
		{"unknown loss", config.DistillConfig{Loss: "l3"}, `"l3": unknown`},
		{"combined: duplicate part", config.DistillConfig{Loss: "l2+l2"}, `part 2 is "l2"`},
		{"combined: none part", config.DistillConfig{Loss: "l2+none"}, `part 2 is "none"`},
		{"combined: unknown part", config.DistillConfig{Loss: "l2+l3"}, `"l3": unknown`},
		{"combined: weights count", config.DistillConfig{Loss: "l2+fine_grained", Weights: []float64{1}}, "1 weights for the 2 parts"},
		{"unknown pair kind", config.DistillConfig{Loss: "pairs", Weight: 1, Pairs: []config.PairConfig{{Student: "a", Teacher: "b", Kind: "l5", Weight: 1}}}, "distill.pairs.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewRecipe(tt.dc, 3, 20, 1)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want %q", err, tt.want)
			}
		})
	}
}

// A combined loss is the sum of its parts: Forward of each term of
// l2+fine_grained equals that of the single-loss recipe with the same
// weight, and Has sees both parts.
func TestCombinedRecipeSum(t *testing.T) {
	const C = 3
	shape := []int{2, 3 * (5 + C), 4, 4}
	mk := func(name string, seed int) Tensor {
		n := 1
		for _, d := range shape {
			n *= d
		}
		d := make([]float32, n)
		for i := range d {
			d[i] = float32((i*7+seed*13)%29)/7 - 2
		}
		return Tensor{Name: name, Data: d, Shape: shape}
	}
	stu, tea := []Tensor{mk("s", 1)}, []Tensor{mk("t", 2)}
	forward := func(dc config.DistillConfig) []float64 {
		r, err := NewRecipe(dc, 1, C, 1)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		var out []float64
		for _, term := range r.Terms {
			v, err := term.Loss.Forward(stu, tea, nil)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, v)
		}
		return out
	}
	both := forward(config.DistillConfig{Loss: "l2+fine_grained", Weights: []float64{3, 5}})
	l2 := forward(config.DistillConfig{Loss: "l2", Weight: 3})
	fg := forward(config.DistillConfig{Loss: "fine_grained", Weight: 5})
	if len(both) != 2 || both[0] != l2[0] || both[1] != fg[0] || !(both[0] > 0 && both[1] > 0) {
		t.Errorf("combined terms %v, want l2 %v and fine_grained %v (both > 0)", both, l2, fg)
	}
	r, err := NewRecipe(config.DistillConfig{Loss: "l2+fine_grained"}, 1, C, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if !r.Has("l2") || !r.Has("fine_grained") || r.Has("fsp") {
		t.Errorf("Has: l2 %v fine_grained %v fsp %v", r.Has("l2"), r.Has("fine_grained"), r.Has("fsp"))
	}
}

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

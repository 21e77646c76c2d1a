package augment

import (
	"maps"
	"reflect"
	"slices"
	"testing"

	"yolodistill/pkg/box"
	"yolodistill/pkg/dataset"
)

// perturb changes every number and switch reachable from v (v settable).
func perturb(v reflect.Value) {
	switch v.Kind() {
	case reflect.Bool:
		v.SetBool(!v.Bool())
	case reflect.Float32, reflect.Float64:
		v.SetFloat(v.Float()*1.5 + 0.25)
	case reflect.Int:
		v.SetInt(v.Int() + 1)
	case reflect.Array:
		for i := 0; i < v.Len(); i++ {
			perturb(v.Index(i))
		}
	case reflect.Slice:
		c := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		reflect.Copy(c, v)
		for i := 0; i < c.Len(); i++ {
			perturb(c.Index(i))
		}
		v.Set(c)
	default:
		panic("perturb: unhandled kind " + v.Kind().String())
	}
}

// TestReplaySettingsComplete: for a record that uses every operation, each
// Config field changes Apply's pixels exactly when it changes
// ReplaySettings. (MaxBoxes changes the targets only.)
func TestReplaySettingsComplete(t *testing.T) {
	img, partner := dataset.NewImage(20, 16), dataset.NewImage(18, 20)
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 37 % 251)
	}
	for i := range partner.Pix {
		partner.Pix[i] = uint8(i * 53 % 241)
	}
	targets := []dataset.Target{{Box: box.Box{X0: 2, Y0: 2, X1: 9, Y1: 8}, Score: 1}, {Box: box.Box{X0: 8, Y0: 6, X1: 15, Y1: 14}, Label: 1, Score: 1}}
	pt := []dataset.Target{{Box: box.Box{X0: 4, Y0: 5, X1: 12, Y1: 16}, Label: 2, Score: 1}}
	rec := Record{Sample: 0, Partner: 1, MixFactor: 0.6, ColorOrder: [4]uint8{2, 0, 3, 1}, ColorOn: [4]bool{true, true, true, true},
		ColorDelta: [4]float64{12, 1.2, 0.8, 0.1}, Expand: true, ExpandX: 5, ExpandY: 4, ExpandW: 30, ExpandH: 28,
		Crop: true, CropX: 2, CropY: 1, CropW: 27, CropH: 25, Flip: true, Size: 16, Interp: InterpLinear}
	apply := func(c *Config) View {
		v, err := c.Apply(&rec, img, targets, partner, pt, nil)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	base := DefaultConfig()
	baseView, baseSet := apply(&base), base.ReplaySettings(false)
	pixelFields := map[string]bool{"Mean": true, "Std": true, "ExpandFill": true}
	typ := reflect.TypeOf(base)
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		t.Run(f.Name, func(t *testing.T) {
			c := DefaultConfig()
			perturb(reflect.ValueOf(&c).Elem().Field(i))
			v := apply(&c)
			pixels := !slices.Equal(v.Image, baseView.Image)
			settings := !maps.Equal(c.ReplaySettings(false), baseSet)
			if pixels != settings || pixels != pixelFields[f.Name] {
				t.Errorf("pixels changed %v, replay settings changed %v", pixels, settings)
			}
			if f.Name == "MaxBoxes" {
				c.MaxBoxes = 1
				if len(apply(&c).Targets) != 1 || len(baseView.Targets) < 2 {
					t.Errorf("MaxBoxes 1: %d targets (default: %d)", len(apply(&c).Targets), len(baseView.Targets))
				}
			}
		})
	}
}

func TestReplaySettingsValues(t *testing.T) {
	c := DefaultConfig()
	c.Mean = [3]float64{0.1, 1e-9, 2}
	c.ExpandFill = [3]float32{0.1, 255, 7}
	want := map[string]string{"data.augment.mean": "[0.1,1e-09,2]", "data.augment.std": "[0.229,0.224,0.225]", "data.augment.expand.fill": "[0.1,255,7]"}
	for _, drawn := range []bool{false, true} {
		if got := c.ReplaySettings(drawn); !maps.Equal(got, want) {
			t.Errorf("drawnOnly %v: %v, want %v", drawn, got, want)
		}
	}
	c.Expand = false
	if got := c.ReplaySettings(false); !maps.Equal(got, want) {
		t.Errorf("expand off, all: %v, want %v", got, want)
	}
	delete(want, "data.augment.expand.fill")
	if got := c.ReplaySettings(true); !maps.Equal(got, want) {
		t.Errorf("expand off, drawn only: %v, want %v", got, want)
	}
}

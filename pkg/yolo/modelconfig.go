package yolo

import (
	"fmt"

	"yolodistill/pkg/config"
)

// ConfigFrom converts the `model:` section of a configuration file into the
// Config that New takes; model.layout picks the layout ("" or "torch": the
// torch build, "paddle": PaddleDetection's).
func ConfigFrom(m config.ModelConfig) Config {
	masks := make([][]int, len(m.AnchorMasks))
	for i, mk := range m.AnchorMasks {
		masks[i] = append([]int(nil), mk...)
	}
	return Config{
		Backbone:      m.Backbone,
		BackboneWidth: m.BackboneWidth,
		HeadWidth:     m.HeadWidth,
		NumClasses:    m.NumClasses,
		AnchorMasks:   masks,
		Layout:        m.Layout,
	}
}

// AnchorsFrom converts configuration anchors ([width, height] in input
// pixels) to Anchors.
func AnchorsFrom(a [][2]float64) []Anchor {
	out := make([]Anchor, len(a))
	for i, wh := range a {
		out[i] = Anchor{W: wh[0], H: wh[1]}
	}
	return out
}

// FromModelConfig builds the Spec of a configuration's model section, after
// checking its anchors and masks with CheckAnchors. Errors do not name the
// file; callers add it.
func FromModelConfig(m config.ModelConfig) (*Spec, error) {
	if m.Architecture != "" && m.Architecture != "YOLOv3" {
		return nil, fmt.Errorf("model: architecture %q is not supported; want YOLOv3", m.Architecture)
	}
	if err := CheckAnchors(AnchorsFrom(m.Anchors), m.AnchorMasks); err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	return New(ConfigFrom(m))
}

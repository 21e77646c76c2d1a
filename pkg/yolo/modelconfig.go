package yolo

import (
	"fmt"

	"yolodistill/pkg/anchor"
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

// FromModelConfig builds the Spec of a configuration's model section, after
// checking its anchors and masks with anchor.Check (one mask per output of
// anchor.DefaultStrides). Errors do not name the file; callers add it.
func FromModelConfig(m config.ModelConfig) (*Spec, error) {
	if m.Architecture != "" && m.Architecture != "YOLOv3" {
		return nil, fmt.Errorf("model: architecture %q is not supported; want YOLOv3", m.Architecture)
	}
	if err := anchor.Check(m.Anchors, m.AnchorMasks, anchor.DefaultStrides()); err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	return New(ConfigFrom(m))
}

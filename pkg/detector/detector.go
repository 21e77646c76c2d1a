package detector

import (
	"fmt"
	"slices"
	"time"

	"yolodistill/pkg/anchor"
	"yolodistill/pkg/box"
	"yolodistill/pkg/checkpoint"
	"yolodistill/pkg/config"
	"yolodistill/pkg/nn"
	"yolodistill/pkg/yolo"
	"yolodistill/pkg/yolo/decode"
)

// Detector is a YOLOv3 model ready to run: the Spec of a configuration's
// model section, its parameters (one nn.ParamSet) and the graphs built on
// them, one per input shape (N, H, W) and mode, built lazily once and reused.
// Multi-scale training builds one graph per input size; every graph shares
// the same parameter tensors, so an update through one is seen by all.
//
// Input images are [N, 3, H, W] float32, NCHW, already normalised (pkg/dataset
// loaders produce them); H and W are multiples of 32. Head outputs are
// Spec.Outputs order, deepest first: [N, A_i*(5+C), H/Strides[i], W/Strides[i]].
//
// A Detector is not safe for concurrent use (its graphs share parameters and
// buffers).
type Detector struct {
	// Config is the configuration the detector was made from (model, loss
	// scale_x_y and eval NMS settings are read from it).
	Config *config.Config
	Spec   *yolo.Spec
	Params *nn.ParamSet
	// Anchors (input pixels, w and h) and Masks (per output, deepest first)
	// from the configuration.
	Anchors []anchor.Anchor
	Masks   [][]int

	// OnBuild, when set, is called for every training graph (see Net) after
	// the network is added to the builder and before nn.Builder.Build: it
	// attaches the losses (Builder.Loss) and may add layers (adapters). It is
	// never called for inference graphs. Set it before the first Net(.., true).
	OnBuild func(b *nn.Builder, net *Net) error

	// NetTime and NetImages add up the wall time Predict spends in the
	// network's forward pass (Graph.Forward only: no decoding, image loading
	// or drawing) and the images it ran: detect-infer reports the network's
	// images/s from them.
	NetTime   time.Duration
	NetImages int

	nets map[netKey]*Net
	dec  *decode.Decoder
}

type netKey struct {
	n, h, w     int
	train, lean bool
}

// Net is one built graph of a Detector, for a fixed input shape.
type Net struct {
	Graph *nn.Graph
	// Built maps the Spec's layer names and aliases to the graph's tensors;
	// Built.Outputs are the head outputs.
	Built   *yolo.Built
	N, H, W int
	// Train: built with the OnBuild losses for Graph.Step.
	Train bool
	// Shapes[i] is the shape of head output i: [N, A_i*(5+C), H_i, W_i].
	Shapes [][4]int
	outs   [][]float32
}

// Outputs returns the head outputs after Graph.Forward or Graph.Step
// (deepest first, shapes in Net.Shapes). The slices are the graph's own
// buffers: valid until the next Forward or Step of this graph.
func (n *Net) Outputs() [][]float32 {
	for i, t := range n.Built.Outputs {
		n.outs[i], _ = n.Graph.Tensor(t.Name())
	}
	return n.outs
}

// New makes the detector of cfg's model section with freshly
// initialised parameters: deterministic in cfg.Train.Seed (nn.ParamSet), then
// the objectness biases set to model.obj_bias_init when given. Every
// parameter exists once New returns (a tiny graph is built to create
// them), so checkpoints can be loaded before any Net is built.
func New(cfg *config.Config) (*Detector, error) {
	spec, err := yolo.FromModelConfig(cfg.Model)
	if err != nil {
		return nil, err
	}
	d := &Detector{
		Config:  cfg,
		Spec:    spec,
		Params:  nn.NewParamSet(uint64(cfg.Train.Seed)),
		Anchors: slices.Clone(cfg.Model.Anchors),
		nets:    map[netKey]*Net{},
	}
	for _, m := range cfg.Model.AnchorMasks {
		d.Masks = append(d.Masks, slices.Clone(m))
	}
	// Create every parameter (in Spec order) with a throwaway 1x32x32 builder.
	b := nn.NewBuilder(d.Params, []int{1, spec.InChannels, 32, 32})
	if _, err := yolo.Build(spec, b); err != nil {
		return nil, err
	}
	if cfg.Model.ObjBiasInit != nil {
		if err := d.SetObjBias(float32(*cfg.Model.ObjBiasInit)); err != nil {
			return nil, err
		}
	}
	nms := cfg.Eval.NMS
	d.dec, err = decode.New(decode.Config{
		Anchors: d.Anchors, Masks: d.Masks, Strides: spec.Strides, NumClasses: spec.NumClasses,
		ConfThresh: nms.ScoreThreshold, ScaleXY: cfg.Loss.ScaleXY, ClipBBox: true,
		ScoreThresh: nms.ScoreThreshold, NMSTopK: nms.NMSTopK, KeepTopK: nms.KeepTopK, NMSThresh: nms.NMSThreshold,
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// SetObjBias sets the objectness channels (a*(5+C)+4 for each anchor a) of
// every head output's bias "head.i.out.bias" to v (a logit; logit(0.01) =
// -4.59512 makes every prediction start near 1% objectness). The other
// channels are left alone.
func (d *Detector) SetObjBias(v float32) error {
	C := d.Spec.NumClasses
	for i, o := range d.Spec.Outputs {
		name := d.Spec.Resolve(o) + ".bias"
		p := d.Params.Get(name)
		if p == nil {
			return fmt.Errorf("model: output %s has no bias %s for obj_bias_init", o, name)
		}
		for a := 0; a < d.Spec.AnchorsPerScale[i]; a++ {
			p.Data[a*(5+C)+4] = v
		}
	}
	return nil
}

// Net returns the graph for n images of h x w pixels, building it on first
// use. train selects a training graph (OnBuild attaches its losses; use
// Graph.Step) or an inference graph (Graph.Forward only). Graphs are never
// rebuilt: call it every step. A graph that would need more memory than the
// machine has available is refused before it is built (*MemoryError, see
// CheckMemory).
func (d *Detector) Net(n, h, w int, train bool) (*Net, error) {
	return d.net(n, h, w, train, false)
}

// net is Net; lean (inference only) builds a graph whose layers share
// buffers (nn.Builder.ReuseBuffers): only the head outputs stay readable, and
// the forward needs a few layers' activations at a time, not all of them.
func (d *Detector) net(n, h, w int, train, lean bool) (*Net, error) {
	lean = lean && !train
	k := netKey{n, h, w, train, lean}
	if net, ok := d.nets[k]; ok {
		return net, nil
	}
	if err := yolo.CheckInputSize(h, w); err != nil {
		return nil, err
	}
	if n < 1 {
		return nil, fmt.Errorf("model: batch size %d", n)
	}
	if err := CheckMemory(d.Spec, n, h, w, train, int64(d.Params.ReusableBytes(train, n))); err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	b := nn.NewBuilder(d.Params, []int{n, d.Spec.InChannels, h, w})
	built, err := yolo.Build(d.Spec, b)
	if err != nil {
		return nil, err
	}
	net := &Net{Built: built, N: n, H: h, W: w, Train: train, outs: make([][]float32, len(built.Outputs))}
	for _, t := range built.Outputs {
		s := t.Shape()
		net.Shapes = append(net.Shapes, [4]int{s[0], s[1], s[2], s[3]})
	}
	if train {
		if d.OnBuild == nil {
			return nil, fmt.Errorf("model: training graph requested but no loss is attached (Detector.OnBuild is nil)")
		}
		if err := d.OnBuild(b, net); err != nil {
			return nil, err
		}
	}
	if lean {
		var keep []string
		for _, t := range built.Outputs {
			keep = append(keep, t.Name())
		}
		b.ReuseBuffers(keep...)
	}
	if net.Graph, err = b.Build(); err != nil {
		return nil, err
	}
	d.nets[k] = net
	return net, nil
}

// Predict runs the inference graph for n images of h x w pixels on input
// ([N, 3, H, W], normalised) with BatchNorm running statistics and returns
// the head outputs and their shapes (deepest first). The output slices are
// the graph's buffers: valid until the next run of a graph of the same shape.
func (d *Detector) Predict(input []float32, n, h, w int) ([][]float32, [][4]int, error) {
	net, err := d.net(n, h, w, false, true)
	if err != nil {
		return nil, nil, err
	}
	if err := net.Graph.SetInput(input); err != nil {
		return nil, nil, err
	}
	start := time.Now()
	if err := net.Graph.Forward(false); err != nil {
		return nil, nil, err
	}
	d.NetTime += time.Since(start)
	d.NetImages += n
	return net.Outputs(), net.Shapes, nil
}

// Detect runs Predict and decodes every image's detections with the
// configuration's NMS settings (eval.nms; yolo_box conf_thresh =
// score_threshold, boxes clipped to the image). placements[i] says where
// original image i lies in the input (decode.Stretch for a plain resize).
// Returned boxes are half-open pixel boxes of the original images, sorted by
// descending score; labels index data.classes.
func (d *Detector) Detect(input []float32, n, h, w int, placements []decode.Placement) ([][]box.Scored, error) {
	if len(placements) != n {
		return nil, fmt.Errorf("detect: %d placements for %d images", len(placements), n)
	}
	outs, shapes, err := d.Predict(input, n, h, w)
	if err != nil {
		return nil, err
	}
	return d.Decode(outs, shapes, h, w, placements)
}

// Decode decodes head outputs (as Predict returns them) of n =
// len(placements) images of h x w input pixels; see Detect.
func (d *Detector) Decode(outs [][]float32, shapes [][4]int, h, w int, placements []decode.Placement) ([][]box.Scored, error) {
	res := make([][]box.Scored, len(placements))
	for i, pl := range placements {
		dets, err := d.dec.Detect(outs, shapes, i, h, w, pl)
		if err != nil {
			return nil, err
		}
		res[i] = slices.Clone(dets)
	}
	return res, nil
}

// Tensors returns the detector's tensors for checkpoints: trainable
// parameters in section checkpoint.SectionParams and BatchNorm running
// statistics in checkpoint.SectionBNStats, in parameter creation order. Dst
// is the parameter's own storage.
func (d *Detector) Tensors() []checkpoint.Target {
	var out []checkpoint.Target
	for _, p := range d.Params.Params() {
		sec := checkpoint.SectionParams
		if !p.Trainable {
			sec = checkpoint.SectionBNStats
		}
		out = append(out, checkpoint.Target{Section: sec, Name: p.Name, Shape: p.Shape, Dst: p.Data})
	}
	return out
}

// ToCheckpoint returns a checkpoint holding a copy of the weights (params)
// and BatchNorm statistics (bn_stats), the configuration's canonical YAML and
// its model hash in Meta["model_hash"], and in Meta["config_dir"] the
// absolute folder its relative paths (distill.teacher) resolve against, so
// that a run resumed from the checkpoint alone finds them. The caller adds
// training state.
func (d *Detector) ToCheckpoint() *checkpoint.Checkpoint {
	c := &checkpoint.Checkpoint{Config: string(d.Config.YAML()), Meta: map[string]string{"model_hash": d.Config.ModelHash()}}
	if dir := d.Config.StoredDir(); dir != "" {
		c.Meta["config_dir"] = dir
	}
	for _, t := range d.Tensors() {
		// Names are unique in a ParamSet and lengths match shapes: Add cannot fail.
		if err := c.Add(t.Section, t.Name, t.Shape, slices.Clone(t.Dst)); err != nil {
			panic(err)
		}
	}
	return c
}

// LoadCheckpoint copies every weight and BatchNorm statistic from c. Every
// tensor of the model must be in c with the same shape and c must have no
// other tensor in those sections; otherwise nothing is copied and the error
// is a *checkpoint.MismatchError naming each differing tensor.
func (d *Detector) LoadCheckpoint(c *checkpoint.Checkpoint) error {
	_, err := c.LoadInto(d.Tensors(), true)
	return err
}

// LoadPretrained copies the weights and BatchNorm statistics of c that fit
// (same name and shape) and returns the tensors that were not loaded
// (checkpoint.Missing: kept at their initial values; checkpoint.Unexpected:
// in c only). A tensor present in both with different shapes is an error
// (*checkpoint.MismatchError listing those tensors) and nothing is copied.
func (d *Detector) LoadPretrained(c *checkpoint.Checkpoint) ([]checkpoint.Mismatch, error) {
	ts := d.Tensors()
	specs := make([]checkpoint.TensorSpec, len(ts))
	for i, t := range ts {
		specs[i] = checkpoint.TensorSpec{Section: t.Section, Name: t.Name, Shape: t.Shape}
	}
	var bad, rest []checkpoint.Mismatch
	for _, m := range c.Diff(specs) {
		if m.Kind == checkpoint.ShapeDiff {
			bad = append(bad, m)
		} else {
			rest = append(rest, m)
		}
	}
	if len(bad) > 0 {
		return rest, &checkpoint.MismatchError{File: c.Path, Mismatches: bad}
	}
	if _, err := c.LoadInto(ts, false); err != nil {
		return rest, err
	}
	return rest, nil
}

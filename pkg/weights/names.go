package weights

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"yolodistill/pkg/yolo"
)

// Scheme is a naming of a model's tensors.
type Scheme string

// The naming schemes Map knows.
const (
	// SchemeOurs: this project's names ("backbone.conv1.weight",
	// "head.0.conv0.bn.scale"): our checkpoints, or a safetensors file written
	// with them.
	SchemeOurs Scheme = "yolodistill"
	// SchemePaddle: PaddleDetection release/0.3's static-graph variable names
	// ("conv1_weights", "bn2a_branch2a_scale", "conv2_1_dw_bn_offset",
	// "yolo_block.0.0.0.conv.weights", "yolo_output.0.conv.bias").
	SchemePaddle Scheme = "PaddleDetection"
	// SchemeTorch: the module names of ../shared/bench/torch_reference.py's
	// Detector ("backbone.stem.0.weight", "backbone.l1.0.c1.1.running_mean",
	// "head.blocks.0.4.0.weight", "head.outs.2.bias"); a backbone module saved
	// alone may leave out "backbone.".
	SchemeTorch Scheme = "torch_reference"
	// SchemeTorchvision: torchvision's ResNet ("conv1.weight",
	// "layer2.0.downsample.1.running_var"): a backbone only.
	SchemeTorchvision Scheme = "torchvision"
)

var schemes = []Scheme{SchemeOurs, SchemePaddle, SchemeTorch, SchemeTorchvision}

// Part names: every tensor of our models belongs to one.
const (
	PartBackbone = "backbone"
	PartHead     = "head"
)

// binding is one of our tensors and the names a file may give it.
type binding struct {
	ours   string
	theirs []string // first is the canonical name
	part   string
}

// suffixes of our tensors per layer kind (pkg/nn's parameter names).
var (
	ourConvBN = []string{".weight", ".bn.scale", ".bn.bias", ".bn.mean", ".bn.var"}
	ourConv   = []string{".weight", ".bias"}
)

// bindings lists every parameter and BatchNorm statistic of spec with its
// names under scheme s, in Spec order; nil when s cannot name this model
// (torchvision has no MobileNetV1 and no head).
func bindings(spec *yolo.Spec, s Scheme) []binding {
	resnet := false
	for _, l := range spec.Layers {
		if l.Name == "backbone.pool1" {
			resnet = true
		}
	}
	if s == SchemeTorchvision && !resnet {
		return nil
	}
	var out []binding
	mbIndex := map[string]int{}
	for i, b := range mobileNetBlocks {
		mbIndex[b] = i
	}
	for _, l := range spec.Layers {
		if l.Kind != yolo.ConvBNAct && l.Kind != yolo.Conv {
			continue
		}
		part := PartHead
		if strings.HasPrefix(l.Name, "backbone.") {
			part = PartBackbone
		}
		ours := ourConv
		if l.Kind == yolo.ConvBNAct {
			ours = ourConvBN
		}
		var theirs []string // one per ours suffix
		switch s {
		case SchemeOurs:
			for _, suf := range ours {
				theirs = append(theirs, l.Name+suf)
			}
		case SchemePaddle:
			theirs = paddleNames(l, resnet)
		case SchemeTorch:
			theirs = torchNames(l, resnet, mbIndex)
		case SchemeTorchvision:
			if part == PartBackbone {
				theirs = torchvisionNames(l)
			}
		}
		if len(theirs) != len(ours) {
			// A layer the scheme cannot name (torchvision has no head): its
			// tensors can only be missing.
			theirs = make([]string, len(ours))
			for i := range theirs {
				theirs[i] = "(no " + string(s) + " name)"
			}
		}
		for i, suf := range ours {
			b := binding{ours: l.Name + suf, theirs: []string{theirs[i]}, part: part}
			if s == SchemeTorch && strings.HasPrefix(theirs[i], "backbone.") {
				b.theirs = append(b.theirs, strings.TrimPrefix(theirs[i], "backbone."))
			}
			out = append(out, b)
		}
	}
	return out
}

// mobileNetBlocks are the depthwise-separable blocks of pkg/yolo's
// MobileNetV1, in order (PaddleDetection's names).
var mobileNetBlocks = []string{"conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv4_1", "conv4_2",
	"conv5_1", "conv5_2", "conv5_3", "conv5_4", "conv5_5", "conv5_6", "conv6"}

// headNames maps a head layer "head.I.X" to its index I and role X.
func headNames(name string) (i int, role string, ok bool) {
	rest, ok := strings.CutPrefix(name, "head.")
	if !ok {
		return 0, "", false
	}
	idx, role, ok := strings.Cut(rest, ".")
	if !ok {
		return 0, "", false
	}
	i, err := strconv.Atoi(idx)
	return i, role, err == nil
}

var resBlockRE = regexp.MustCompile(`^backbone\.res([2-5])([a-z])\.(branch2a|branch2b|branch1)$`)

func convBN(conv string, bn string, bnSep string, bnSuffixes [4]string) []string {
	return []string{conv, bn + bnSep + bnSuffixes[0], bn + bnSep + bnSuffixes[1], bn + bnSep + bnSuffixes[2], bn + bnSep + bnSuffixes[3]}
}

var (
	paddleBackboneBN = [4]string{"scale", "offset", "mean", "variance"}
	paddleHeadBN     = [4]string{"scale", "offset", "mean", "var"}
	torchBN          = [4]string{"weight", "bias", "running_mean", "running_var"}
)

// paddleNames: PaddleDetection release/0.3 (backbones/mobilenet.py
// _conv_norm: NAME_weights, NAME_bn_scale...; backbones/resnet.py:
// NAME_weights, bn_conv1_* or bnXY_branchZ_*; anchor_heads/yolo_head.py:
// yolo_block.I.J.K.conv.weights, .bn.scale/offset/mean/var,
// yolo_block.I.tip, yolo_transition.I, yolo_output.I.conv.weights/bias).
func paddleNames(l yolo.Layer, resnet bool) []string {
	if i, role, ok := headNames(l.Name); ok {
		blk := fmt.Sprintf("yolo_block.%d.", i)
		base := map[string]string{"conv0": blk + "0.0", "conv1": blk + "0.1", "conv2": blk + "1.0", "conv3": blk + "1.1",
			"route": blk + "2", "tip": blk + "tip", "transition": fmt.Sprintf("yolo_transition.%d", i)}[role]
		if role == "out" {
			o := fmt.Sprintf("yolo_output.%d.conv.", i)
			return []string{o + "weights", o + "bias"}
		}
		if base == "" {
			return nil
		}
		return convBN(base+".conv.weights", base+".bn", ".", paddleHeadBN)
	}
	if l.Name == "backbone.conv1" {
		if resnet {
			return convBN("conv1_weights", "bn_conv1", "_", paddleBackboneBN)
		}
		return convBN("conv1_weights", "conv1_bn", "_", paddleBackboneBN)
	}
	if m := resBlockRE.FindStringSubmatch(l.Name); m != nil {
		return convBN("res"+m[1]+m[2]+"_"+m[3]+"_weights", "bn"+m[1]+m[2]+"_"+m[3], "_", paddleBackboneBN)
	}
	if rest, ok := strings.CutPrefix(l.Name, "backbone."); ok {
		blk, kind, ok := strings.Cut(rest, ".")
		if ok && (kind == "dw" || kind == "sep") {
			base := blk + "_" + kind
			return convBN(base+"_weights", base+"_bn", "_", paddleBackboneBN)
		}
	}
	return nil
}

// torchNames: torch_reference.py's module names (MobileNetV1 stem/s8/s16/s32
// of conv_bn Sequentials; ResNet stem.0 and lS.J.c1/c2/short; YOLOv3Head
// blocks/tips/outs/routes).
func torchNames(l yolo.Layer, resnet bool, mbIndex map[string]int) []string {
	if i, role, ok := headNames(l.Name); ok {
		var base string
		switch role {
		case "conv0", "conv1", "conv2", "conv3":
			base = fmt.Sprintf("head.blocks.%d.%c", i, role[4])
		case "route":
			base = fmt.Sprintf("head.blocks.%d.4", i)
		case "tip":
			base = fmt.Sprintf("head.tips.%d", i)
		case "transition":
			base = fmt.Sprintf("head.routes.%d", i)
		case "out":
			o := fmt.Sprintf("head.outs.%d.", i)
			return []string{o + "weight", o + "bias"}
		default:
			return nil
		}
		return convBN(base+".0.weight", base+".1", ".", torchBN)
	}
	if l.Name == "backbone.conv1" {
		if resnet {
			return convBN("backbone.stem.0.0.weight", "backbone.stem.0.1", ".", torchBN)
		}
		return convBN("backbone.stem.0.weight", "backbone.stem.1", ".", torchBN)
	}
	if m := resBlockRE.FindStringSubmatch(l.Name); m != nil {
		stage, _ := strconv.Atoi(m[1])
		mod := map[string]string{"branch2a": "c1", "branch2b": "c2", "branch1": "short"}[m[3]]
		base := fmt.Sprintf("backbone.l%d.%d.%s", stage-1, m[2][0]-'a', mod)
		return convBN(base+".0.weight", base+".1", ".", torchBN)
	}
	if rest, ok := strings.CutPrefix(l.Name, "backbone."); ok {
		blk, kind, ok := strings.Cut(rest, ".")
		k, known := mbIndex[blk]
		if ok && known && (kind == "dw" || kind == "sep") {
			stage, j := "s8", k
			if k >= 11 {
				stage, j = "s32", k-11
			} else if k >= 5 {
				stage, j = "s16", k-5
			}
			sub := 0
			if kind == "sep" {
				sub = 1
			}
			base := fmt.Sprintf("backbone.%s.%d.%d", stage, j, sub)
			return convBN(base+".0.weight", base+".1", ".", torchBN)
		}
	}
	return nil
}

// torchvisionNames: torchvision.models.resnet (conv1/bn1, layerS.J.conv1/bn1,
// conv2/bn2, downsample.0/1).
func torchvisionNames(l yolo.Layer) []string {
	if l.Name == "backbone.conv1" {
		return convBN("conv1.weight", "bn1", ".", torchBN)
	}
	m := resBlockRE.FindStringSubmatch(l.Name)
	if m == nil {
		return nil
	}
	stage, _ := strconv.Atoi(m[1])
	base := fmt.Sprintf("layer%d.%d.", stage-1, m[2][0]-'a')
	switch m[3] {
	case "branch2a":
		return convBN(base+"conv1.weight", base+"bn1", ".", torchBN)
	case "branch2b":
		return convBN(base+"conv2.weight", base+"bn2", ".", torchBN)
	}
	return convBN(base+"downsample.0.weight", base+"downsample.1", ".", torchBN)
}

// Why a file tensor that names no model tensor is skipped rather than
// unexpected.
var (
	optimizerRE  = regexp.MustCompile(`(_velocity|_moment[12]|_beta[12]_pow_acc)_[0-9]+$|^learning_rate|^@`)
	classifierRE = regexp.MustCompile(`^fc([0-9]+|_[0-9]+)?[._]`)
)

// skipReason says why a file tensor outside the model is harmless ("" when
// it is unexpected): training state (optimizer slots, learning rate, step
// counters such as BatchNorm's num_batches_tracked) or an ImageNet
// classifier (fc*), which a detector does not use.
func skipReason(t *Tensor) string {
	switch {
	case optimizerRE.MatchString(t.Name), strings.HasSuffix(t.Name, "num_batches_tracked"):
		return "training state"
	case classifierRE.MatchString(t.Name):
		return "ImageNet classifier"
	case t.Data == nil:
		return "not floating point"
	}
	return ""
}

// Names returns, for every parameter and BatchNorm statistic of spec (our
// names), the name scheme s gives it; tensors s cannot name (torchvision has
// no head, no MobileNetV1) are left out.
func Names(spec *yolo.Spec, s Scheme) map[string]string {
	out := map[string]string{}
	for _, b := range bindings(spec, s) {
		if !strings.HasPrefix(b.theirs[0], "(no ") {
			out[b.ours] = b.theirs[0]
		}
	}
	return out
}

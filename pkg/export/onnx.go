package export

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"google.golang.org/protobuf/proto"

	"yolodistill/pkg/atomicfile"
	"yolodistill/pkg/detector"
	"yolodistill/pkg/export/onnxpb"
	"yolodistill/pkg/yolo"
)

// Opset is the ONNX operator set the exported models use.
const Opset = 13

// irVersion is the ONNX IR version written (7: the one of opset 13's
// release, ONNX 1.8; every runtime that runs opset 13 reads it).
const irVersion = 7

// BNEps is the BatchNorm epsilon of our networks (pkg/nn's DefaultBN).
const BNEps = 1e-5

// Options choose what Export writes.
type Options struct {
	// Height and Width fix the input size in pixels (multiples of 32);
	// ignored with Dynamic.
	Height, Width int
	// Dynamic makes height and width symbolic ("height", "width"); the
	// batch is always symbolic ("batch").
	Dynamic bool
	// KeepBN writes Conv + BatchNormalization nodes instead of folding
	// BatchNorm into the convolutions' weights and bias (the default).
	KeepBN bool
	// Decode adds PaddleDetection's yolo_box decoding: a second input
	// "im_size" (int32 [batch, 2]: original height, width) and the outputs
	// "boxes" (float [batch, M, 4]: x1, y1, x2, y2 in original image pixels,
	// clipped to [0, width-1] x [0, height-1]) and "scores" (float [batch, C,
	// M]) instead of the head maps; NMS is left to the runtime. Needs a
	// fixed input size.
	Decode bool
	// Producer is stored as the model's producer_version (e.g. the tool's
	// build line).
	Producer string
}

// OutputNames are the head outputs' names in the exported graph, deepest
// first (strides 32, 16, 8).
var OutputNames = []string{"output_s32", "output_s16", "output_s8"}

// Export builds the ONNX model (opset 13) of d's network with its current
// weights: input "image" (float [batch, 3, H, W], RGB normalised as the
// configuration's data.augment mean and std say), outputs OutputNames
// ([batch, A*(5+C), H/stride, W/stride], per anchor x, y, w, h,
// objectness, C class logits) or, with Decode, "boxes" and "scores". The
// metadata holds anchors, masks, strides, class names, input
// normalisation, decoding and NMS settings (see Metadata).
func Export(d *detector.Detector, opt Options) (*onnxpb.ModelProto, error) {
	spec := d.Spec
	if !opt.Dynamic {
		if err := yolo.CheckInputSize(opt.Height, opt.Width); err != nil {
			return nil, err
		}
		if _, err := spec.Infer(opt.Height, opt.Width); err != nil {
			return nil, err
		}
	} else if opt.Decode {
		return nil, fmt.Errorf("export: decoding needs a fixed input size (the yolo_box grid is built for it)")
	}
	params := map[string][]float32{}
	shapes := map[string][]int{}
	for _, t := range d.Tensors() {
		params[t.Name], shapes[t.Name] = t.Dst, t.Shape
	}
	g := &graph{g: &onnxpb.GraphProto{Name: proto.String(spec.Name)}, params: params, shapes: shapes}
	hDim, wDim := dim(opt.Height, ""), dim(opt.Width, "")
	if opt.Dynamic {
		hDim, wDim = dim(0, "height"), dim(0, "width")
	}
	g.g.Input = append(g.g.Input, valueInfo("image", onnxpb.TensorProto_FLOAT, dim(0, "batch"), dim(spec.InChannels, ""), hDim, wDim))
	names := map[string]string{yolo.InputName: "image"}
	outOf := map[string]int{}
	for i, o := range spec.Outputs {
		outOf[spec.Resolve(o)] = i
	}
	for _, l := range spec.Layers {
		ins := make([]string, len(l.Inputs))
		for i, in := range l.Inputs {
			ins[i] = names[in]
		}
		out := l.Name
		if i, ok := outOf[l.Name]; ok && !opt.Decode {
			out = OutputNames[i]
		}
		if err := g.layer(l, ins, out, opt.KeepBN); err != nil {
			return nil, err
		}
		names[l.Name] = out
	}
	if opt.Decode {
		var heads []string
		for _, o := range spec.Outputs {
			heads = append(heads, names[spec.Resolve(o)])
		}
		if err := g.decode(d, heads, opt.Height, opt.Width); err != nil {
			return nil, err
		}
	} else {
		for i := range spec.Outputs {
			C := spec.AnchorsPerScale[i] * (5 + spec.NumClasses)
			h, w := dim(0, "height/"+strconv.Itoa(spec.Strides[i])), dim(0, "width/"+strconv.Itoa(spec.Strides[i]))
			if !opt.Dynamic {
				h, w = dim(opt.Height/spec.Strides[i], ""), dim(opt.Width/spec.Strides[i], "")
			}
			g.g.Output = append(g.g.Output, valueInfo(OutputNames[i], onnxpb.TensorProto_FLOAT, dim(0, "batch"), dim(C, ""), h, w))
		}
	}
	if g.err != nil {
		return nil, g.err
	}
	m := &onnxpb.ModelProto{
		IrVersion:       proto.Int64(irVersion),
		ProducerName:    proto.String("yolodistill detect-export"),
		ProducerVersion: proto.String(opt.Producer),
		DocString:       proto.String("YOLOv3 " + spec.Name + " exported by yolodistill (opset 13)"),
		OpsetImport:     []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(Opset)}},
		Graph:           g.g,
	}
	for _, kv := range Metadata(d, opt) {
		m.MetadataProps = append(m.MetadataProps, &onnxpb.StringStringEntryProto{Key: proto.String(kv[0]), Value: proto.String(kv[1])})
	}
	return m, nil
}

// Write encodes m to path atomically.
func Write(path string, m *onnxpb.ModelProto) error {
	b, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	return atomicfile.WriteBytes(path, b)
}

// Metadata lists the key/value pairs Export stores in the model: what a
// runtime needs to feed the input and read the outputs. Values are JSON
// where structured.
func Metadata(d *detector.Detector, opt Options) [][2]string {
	cfg := d.Config
	js := func(v any) string {
		b, _ := json.Marshal(v)
		return string(b)
	}
	var anchors [][2]float64
	for _, a := range d.Anchors {
		anchors = append(anchors, [2]float64{a.W(), a.H()})
	}
	size := "dynamic (multiples of 32)"
	if !opt.Dynamic {
		size = fmt.Sprintf("%dx%d", opt.Height, opt.Width)
	}
	outputs := "output_s32, output_s16, output_s8: [batch, A*(5+C), H/stride, W/stride], per anchor the logits x, y, w, h, objectness, C classes (PaddleDetection's order); decode with yolo_box (see anchors, anchor_masks, strides, scale_x_y)"
	if opt.Decode {
		outputs = "boxes: [batch, M, 4] x1, y1, x2, y2 in original image pixels (clipped to width-1, height-1); scores: [batch, C, M], objectness * class probability, 0 where objectness < conf_thresh; apply NMS (see nms)"
	}
	nms := cfg.Eval.NMS
	return [][2]string{
		{"model", d.Spec.Name},
		{"model_hash", cfg.ModelHash()},
		{"num_classes", strconv.Itoa(d.Spec.NumClasses)},
		{"class_names", js(cfg.Data.Classes)},
		{"anchors", js(anchors)},
		{"anchor_masks", js(d.Masks)},
		{"strides", js(d.Spec.Strides)},
		{"scale_x_y", strconv.FormatFloat(cfg.Loss.ScaleXY, 'g', -1, 64)},
		{"conf_thresh", strconv.FormatFloat(nms.ScoreThreshold, 'g', -1, 64)},
		{"nms", js(map[string]any{"score_threshold": nms.ScoreThreshold, "nms_threshold": nms.NMSThreshold, "nms_top_k": nms.NMSTopK, "keep_top_k": nms.KeepTopK})},
		{"input", "image: float32 [batch, 3, H, W], RGB, each value (pixel/255 - mean[c]) / std[c]; the image resized to the input size without keeping its aspect ratio"},
		{"input_size", size},
		{"input_mean", js(cfg.Data.Augment.Mean)},
		{"input_std", js(cfg.Data.Augment.Std)},
		{"outputs", outputs},
		{"bn_folded", strconv.FormatBool(!opt.KeepBN)},
		{"decode", strconv.FormatBool(opt.Decode)},
	}
}

// graph accumulates nodes and initializers; the first error sticks.
type graph struct {
	g      *onnxpb.GraphProto
	params map[string][]float32
	shapes map[string][]int
	err    error
	n      int
}

func dim(v int, param string) *onnxpb.TensorShapeProto_Dimension {
	if param != "" {
		return &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: param}}
	}
	return &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: int64(v)}}
}

func valueInfo(name string, elem onnxpb.TensorProto_DataType, dims ...*onnxpb.TensorShapeProto_Dimension) *onnxpb.ValueInfoProto {
	return &onnxpb.ValueInfoProto{Name: proto.String(name), Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
		TensorType: &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(int32(elem)), Shape: &onnxpb.TensorShapeProto{Dim: dims}}}}}
}

// node appends a node; attrs are built with the attr helpers.
func (g *graph) node(op, name string, ins, outs []string, attrs ...*onnxpb.AttributeProto) {
	g.g.Node = append(g.g.Node, &onnxpb.NodeProto{OpType: proto.String(op), Name: proto.String(name), Input: ins, Output: outs, Attribute: attrs})
}

// tmp returns a fresh value name derived from base.
func (g *graph) tmp(base string) string {
	g.n++
	return fmt.Sprintf("%s/%d", base, g.n)
}

func attrInts(name string, v ...int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INTS.Enum(), Ints: v}
}

func attrInt(name string, v int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(v)}
}

func attrFloat(name string, v float32) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_FLOAT.Enum(), F: proto.Float32(v)}
}

func attrString(name, v string) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_STRING.Enum(), S: []byte(v)}
}

// floats adds a float32 initializer and returns its name.
func (g *graph) floats(name string, shape []int, data []float32) string {
	t := &onnxpb.TensorProto{Name: proto.String(name), DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), RawData: make([]byte, 4*len(data))}
	for _, d := range shape {
		t.Dims = append(t.Dims, int64(d))
	}
	for i, v := range data {
		u := math.Float32bits(v)
		t.RawData[4*i], t.RawData[4*i+1], t.RawData[4*i+2], t.RawData[4*i+3] = byte(u), byte(u>>8), byte(u>>16), byte(u>>24)
	}
	g.g.Initializer = append(g.g.Initializer, t)
	return name
}

// int64s adds an int64 initializer (shapes, slice bounds).
func (g *graph) int64s(name string, data ...int64) string {
	t := &onnxpb.TensorProto{Name: proto.String(name), DataType: proto.Int32(int32(onnxpb.TensorProto_INT64)), Dims: []int64{int64(len(data))}, Int64Data: data}
	g.g.Initializer = append(g.g.Initializer, t)
	return name
}

// scalar adds a 0-d float initializer.
func (g *graph) scalar(name string, v float32) string { return g.floats(name, nil, []float32{v}) }

func (g *graph) param(name string) ([]float32, []int) {
	d, ok := g.params[name]
	if !ok && g.err == nil {
		g.err = fmt.Errorf("export: no parameter %s", name)
	}
	return d, g.shapes[name]
}

// layer appends the nodes of one Spec layer reading ins and writing out.
func (g *graph) layer(l yolo.Layer, ins []string, out string, keepBN bool) error {
	convAttrs := func(c yolo.ConvParams) []*onnxpb.AttributeProto {
		p := int64(c.Pad)
		return []*onnxpb.AttributeProto{attrInts("kernel_shape", int64(c.K), int64(c.K)), attrInts("strides", int64(c.Stride), int64(c.Stride)),
			attrInts("pads", p, p, p, p), attrInt("group", int64(c.Groups)), attrInts("dilations", 1, 1)}
	}
	act := func(in, out string, a yolo.Act) {
		switch a {
		case yolo.ActReLU:
			g.node("Relu", l.Name+"/relu", []string{in}, []string{out})
		case yolo.ActLeaky:
			g.node("LeakyRelu", l.Name+"/leaky", []string{in}, []string{out}, attrFloat("alpha", yolo.LeakySlope))
		default:
			g.node("Identity", l.Name+"/identity", []string{in}, []string{out})
		}
	}
	switch l.Kind {
	case yolo.ConvBNAct:
		w, ws := g.param(l.Name + ".weight")
		scale, _ := g.param(l.Name + ".bn.scale")
		bias, _ := g.param(l.Name + ".bn.bias")
		mean, _ := g.param(l.Name + ".bn.mean")
		vr, _ := g.param(l.Name + ".bn.var")
		if g.err != nil {
			return g.err
		}
		pre := out
		if l.Act != yolo.ActNone {
			pre = l.Name + "/bn"
		}
		if keepBN {
			conv := l.Name + "/conv"
			g.node("Conv", l.Name+"/conv", []string{input0(ins), g.floats(l.Name+".weight", ws, w)}, []string{conv}, convAttrs(l.Conv)...)
			c := []int{len(scale)}
			g.node("BatchNormalization", l.Name+"/bn", []string{conv, g.floats(l.Name+".bn.scale", c, scale), g.floats(l.Name+".bn.bias", c, bias),
				g.floats(l.Name+".bn.mean", c, mean), g.floats(l.Name+".bn.var", c, vr)}, []string{pre}, attrFloat("epsilon", BNEps))
		} else {
			fw, fb := FoldBN(w, scale, bias, mean, vr, BNEps)
			g.node("Conv", l.Name+"/conv", []string{input0(ins), g.floats(l.Name+".weight", ws, fw), g.floats(l.Name+".bias", []int{len(fb)}, fb)},
				[]string{pre}, convAttrs(l.Conv)...)
		}
		if l.Act != yolo.ActNone {
			act(pre, out, l.Act)
		}
	case yolo.Conv:
		w, ws := g.param(l.Name + ".weight")
		in := []string{input0(ins), g.floats(l.Name+".weight", ws, w)}
		if l.Bias {
			b, bs := g.param(l.Name + ".bias")
			in = append(in, g.floats(l.Name+".bias", bs, b))
		}
		g.node("Conv", l.Name, in, []string{out}, convAttrs(l.Conv)...)
	case yolo.MaxPool:
		p := int64(l.Pool.Pad)
		g.node("MaxPool", l.Name, ins, []string{out}, attrInts("kernel_shape", int64(l.Pool.K), int64(l.Pool.K)),
			attrInts("strides", int64(l.Pool.Stride), int64(l.Pool.Stride)), attrInts("pads", p, p, p, p))
	case yolo.Upsample2x:
		g.node("Resize", l.Name, []string{ins[0], "", g.floats(l.Name+"/scales", []int{4}, []float32{1, 1, 2, 2})}, []string{out},
			attrString("mode", "nearest"), attrString("coordinate_transformation_mode", "asymmetric"), attrString("nearest_mode", "floor"))
	case yolo.Concat:
		g.node("Concat", l.Name, ins, []string{out}, attrInt("axis", 1))
	case yolo.AddAct:
		sum := out
		if l.Act != yolo.ActNone {
			sum = l.Name + "/sum"
		}
		g.node("Add", l.Name+"/add", ins, []string{sum})
		if l.Act != yolo.ActNone {
			act(sum, out, l.Act)
		}
	default:
		return fmt.Errorf("export: layer %s: kind %s has no ONNX form", l.Name, l.Kind)
	}
	return g.err
}

func input0(ins []string) string { return ins[0] }

// FoldBN folds inference BatchNorm into the preceding convolution: per
// output channel o, k = scale[o]/sqrt(var[o]+eps), weight'[o] = weight[o]*k
// and bias'[o] = bias[o] - mean[o]*k (computed in float64). weight:
// [Out, In/groups, K, K].
func FoldBN(weight, scale, bias, mean, vr []float32, eps float64) (w, b []float32) {
	out := len(scale)
	per := len(weight) / out
	w = make([]float32, len(weight))
	b = make([]float32, out)
	for o := 0; o < out; o++ {
		k := float64(scale[o]) / math.Sqrt(float64(vr[o])+eps)
		for i := o * per; i < (o+1)*per; i++ {
			w[i] = float32(float64(weight[i]) * k)
		}
		b[o] = float32(float64(bias[o]) - float64(mean[o])*k)
	}
	return w, b
}

// decode appends PaddleDetection's yolo_box over the head outputs heads
// (deepest first) for an input of h x w pixels, and the outputs "boxes" and
// "scores" (see Options.Decode).
func (g *graph) decode(d *detector.Detector, heads []string, h, w int) error {
	spec := d.Spec
	C := spec.NumClasses
	sxy := float32(d.Config.Loss.ScaleXY)
	conf := float32(d.Config.Eval.NMS.ScoreThreshold)
	g.g.Input = append(g.g.Input, valueInfo("im_size", onnxpb.TensorProto_INT32, dim(0, "batch"), dim(2, "")))
	imf := "im_size/float"
	g.node("Cast", "im_size/cast", []string{"im_size"}, []string{imf}, attrInt("to", int64(onnxpb.TensorProto_FLOAT)))
	// Original height and width as [N, 1, 1, 1].
	imH, imW := "im_size/h", "im_size/w"
	shape4 := g.int64s("const/shape_n111", -1, 1, 1, 1)
	for i, nm := range []string{imH, imW} {
		s := g.tmp(nm)
		g.node("Slice", nm+"/slice", []string{imf, g.int64s(g.tmp("const/start"), int64(i)), g.int64s(g.tmp("const/end"), int64(i+1)), g.int64s(g.tmp("const/axis"), 1)}, []string{s})
		g.node("Reshape", nm+"/reshape", []string{s, shape4}, []string{nm})
	}
	imWm1, imHm1 := "im_size/w_minus_1", "im_size/h_minus_1"
	one := g.scalar("const/one", 1)
	zero := g.scalar("const/zero", 0)
	g.node("Sub", imWm1, []string{imW, one}, []string{imWm1})
	g.node("Sub", imHm1, []string{imH, one}, []string{imHm1})
	var boxes, scores []string
	for s, head := range heads {
		A := spec.AnchorsPerScale[s]
		stride := spec.Strides[s]
		gh, gw := h/stride, w/stride
		hw := gh * gw
		p := fmt.Sprintf("decode.%d", s)
		x := p + "/x"
		g.node("Reshape", p+"/reshape", []string{head, g.int64s(p+"/shape", 0, int64(A), int64(5+C), int64(hw))}, []string{x})
		slice := func(name string, from, to int) string {
			out := p + "/" + name
			g.node("Slice", out, []string{x, g.int64s(out+"/start", int64(from)), g.int64s(out+"/end", int64(to)), g.int64s(out+"/axis", 2)}, []string{out})
			return out
		}
		tx, ty, tw, th, tobj, tcls := slice("tx", 0, 1), slice("ty", 1, 2), slice("tw", 2, 3), slice("th", 3, 4), slice("obj", 4, 5), slice("cls", 5, 5+C)
		gx, gy := make([]float32, hw), make([]float32, hw)
		for k := 0; k < gh; k++ {
			for l := 0; l < gw; l++ {
				gx[k*gw+l], gy[k*gw+l] = float32(l), float32(k)
			}
		}
		aw, ah := make([]float32, A), make([]float32, A)
		for a := 0; a < A; a++ {
			an := d.Anchors[d.Masks[s][a]]
			aw[a], ah[a] = float32(an.W()/float64(w)), float32(an.H()/float64(h))
		}
		bias := g.scalar(p+"/bias", -0.5*(sxy-1))
		sxyC := g.scalar(p+"/scale_x_y", sxy)
		// centre: (grid + sigmoid(t)*sxy + bias) / grid size, as a fraction
		centre := func(t, grid string, gridVals []float32, n int, name string) string {
			sg, sc, sb, sgr, out := g.tmp(p+"/sig"), g.tmp(p+"/sc"), g.tmp(p+"/sb"), g.tmp(p+"/sg"), p+"/"+name
			g.node("Sigmoid", sg, []string{t}, []string{sg})
			g.node("Mul", sc, []string{sg, sxyC}, []string{sc})
			g.node("Add", sb, []string{sc, bias}, []string{sb})
			g.node("Add", sgr, []string{sb, g.floats(p+"/"+grid, []int{1, 1, 1, hw}, gridVals)}, []string{sgr})
			g.node("Div", out, []string{sgr, g.scalar(p+"/"+name+"/n", float32(n))}, []string{out})
			return out
		}
		cx, cy := centre(tx, "grid_x", gx, gw, "cx"), centre(ty, "grid_y", gy, gh, "cy")
		size := func(t string, anchors []float32, name string) string {
			e, out := g.tmp(p+"/exp"), p+"/"+name
			g.node("Exp", e, []string{t}, []string{e})
			g.node("Mul", out, []string{e, g.floats(p+"/anchor_"+name, []int{1, A, 1, 1}, anchors)}, []string{out})
			return out
		}
		bw, bh := size(tw, aw, "w"), size(th, ah, "h")
		half := g.scalar(p+"/half", 0.5)
		corner := func(c, sz, op, scaleTo, name string) string {
			hs, cc, out := g.tmp(p+"/half"), g.tmp(p+"/corner"), p+"/"+name
			g.node("Mul", hs, []string{sz, half}, []string{hs})
			g.node(op, cc, []string{c, hs}, []string{cc})
			g.node("Mul", out, []string{cc, scaleTo}, []string{out})
			return out
		}
		x1, y1 := corner(cx, bw, "Sub", imW, "x1"), corner(cy, bh, "Sub", imH, "y1")
		x2, y2 := corner(cx, bw, "Add", imW, "x2"), corner(cy, bh, "Add", imH, "y2")
		clip := func(v, op, bound string) string {
			out := g.tmp(v + "/clip")
			g.node(op, out, []string{v, bound}, []string{out})
			return out
		}
		x1, y1 = clip(x1, "Max", zero), clip(y1, "Max", zero)
		x2, y2 = clip(x2, "Min", imWm1), clip(y2, "Min", imHm1)
		// conf = sigmoid(obj); predictions below conf_thresh get box 0 and score 0.
		cf, mask, maskF := p+"/conf", p+"/keep", p+"/keep_f"
		g.node("Sigmoid", cf, []string{tobj}, []string{cf})
		g.node("GreaterOrEqual", mask, []string{cf, g.scalar(p+"/conf_thresh", conf)}, []string{mask})
		g.node("Cast", maskF, []string{mask}, []string{maskF}, attrInt("to", int64(onnxpb.TensorProto_FLOAT)))
		bx, bxm, bxt, bxr := p+"/box", p+"/box_masked", p+"/box_t", p+"/boxes"
		g.node("Concat", bx, []string{x1, y1, x2, y2}, []string{bx}, attrInt("axis", 2)) // [N, A, 4, hw]
		g.node("Mul", bxm, []string{bx, maskF}, []string{bxm})
		g.node("Transpose", bxt, []string{bxm}, []string{bxt}, attrInts("perm", 0, 1, 3, 2)) // [N, A, hw, 4]
		g.node("Reshape", bxr, []string{bxt, g.int64s(p+"/box_shape", 0, -1, 4)}, []string{bxr})
		sc, scm, sct, scr, cs := p+"/score", p+"/score_masked", p+"/score_t", p+"/scores", p+"/cls_sig"
		g.node("Sigmoid", cs, []string{tcls}, []string{cs})
		g.node("Mul", sc, []string{cs, cf}, []string{sc}) // [N, A, C, hw]
		g.node("Mul", scm, []string{sc, maskF}, []string{scm})
		g.node("Transpose", sct, []string{scm}, []string{sct}, attrInts("perm", 0, 2, 1, 3)) // [N, C, A, hw]
		g.node("Reshape", scr, []string{sct, g.int64s(p+"/score_shape", 0, int64(C), -1)}, []string{scr})
		boxes, scores = append(boxes, bxr), append(scores, scr)
	}
	g.node("Concat", "boxes", boxes, []string{"boxes"}, attrInt("axis", 1))
	g.node("Concat", "scores", scores, []string{"scores"}, attrInt("axis", 2))
	M := 0
	for s := range heads {
		M += spec.AnchorsPerScale[s] * (h / spec.Strides[s]) * (w / spec.Strides[s])
	}
	g.g.Output = append(g.g.Output,
		valueInfo("boxes", onnxpb.TensorProto_FLOAT, dim(0, "batch"), dim(M, ""), dim(4, "")),
		valueInfo("scores", onnxpb.TensorProto_FLOAT, dim(0, "batch"), dim(C, ""), dim(M, "")))
	return g.err
}

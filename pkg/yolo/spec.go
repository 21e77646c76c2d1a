package yolo

import "fmt"

// InputName is the name every Spec uses for the network input image,
// [N, 3, H, W] float32 (batch excluded from Shape values: {3, H, W}).
const InputName = "input"

// Kind is what a Layer computes.
type Kind int

// Layer kinds. Every kind has one output tensor; shapes in comments are per
// image, [C, H, W] (the batch dimension is implicit and unchanged).
const (
	// ConvBNAct is a convolution without bias, BatchNorm (trainable weight and
	// bias, running mean and variance) and the activation Act. One input.
	ConvBNAct Kind = iota + 1
	// Conv is a plain convolution, with a bias when Bias is set. One input.
	Conv
	// MaxPool is max pooling with Pool's window, stride and zero padding
	// (padded cells never win), floor rounding of the output size. One input.
	MaxPool
	// Upsample2x is nearest-neighbour upsampling by 2 in H and W. One input.
	Upsample2x
	// Concat joins its inputs along C, in input order. H and W must agree.
	Concat
	// AddAct adds its two inputs elementwise (equal shapes) and applies Act.
	AddAct
)

var kindNames = map[Kind]string{
	ConvBNAct: "conv_bn_act", Conv: "conv", MaxPool: "maxpool",
	Upsample2x: "upsample2x", Concat: "concat", AddAct: "add_act",
}

// String returns the kind's lower-case name ("conv_bn_act", "conv", ...).
func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Act is an activation function.
type Act int

// Activations.
const (
	ActNone  Act = iota // identity
	ActReLU             // max(x, 0)
	ActLeaky            // max(x, 0.1x): LeakyReLU with slope LeakySlope
)

// LeakySlope is the negative slope of ActLeaky (PaddleDetection's YOLOv3 head).
const LeakySlope = 0.1

// String returns "none", "relu" or "leaky".
func (a Act) String() string {
	switch a {
	case ActNone:
		return "none"
	case ActReLU:
		return "relu"
	case ActLeaky:
		return "leaky"
	}
	return fmt.Sprintf("act(%d)", int(a))
}

// ConvParams are a convolution's hyper-parameters: Out output channels, a
// square K x K kernel, Stride, symmetric zero padding Pad and Groups (1 for a
// full convolution; Groups == input channels == Out for depthwise).
type ConvParams struct {
	Out, K, Stride, Pad, Groups int
}

// PoolParams are a max pool's square window K, Stride and zero padding Pad.
type PoolParams struct {
	K, Stride, Pad int
}

// Layer is one named node of a network Spec.
type Layer struct {
	// Name is stable and dotted ("backbone.conv2_1.dw", "head.1.route").
	Name string
	Kind Kind
	// Inputs are names of earlier layers or InputName, in order.
	Inputs []string
	// Conv holds the hyper-parameters of ConvBNAct and Conv layers.
	Conv ConvParams
	// Act is the activation of ConvBNAct and AddAct layers.
	Act Act
	// Bias: a Conv layer has a per-output-channel bias.
	Bias bool
	// Pool holds the hyper-parameters of MaxPool layers.
	Pool PoolParams
}

// Alias gives a layer's output a second, role-based name, such as
// "backbone.c4" for the stride-16 backbone feature map.
type Alias struct {
	Name  string // the alias, e.g. "backbone.c3"
	Layer string // the layer it names
}

// Spec describes a whole network as data: an ordered (topologically sorted)
// list of layers. It holds no tensors and does not depend on any engine.
type Spec struct {
	// Name describes the network, e.g. "mobilenet_v1x1-yolov3x1-c20".
	Name string
	// InChannels of the input image (3).
	InChannels int
	Layers     []Layer
	Aliases    []Alias
	// Outputs are the detection outputs, deepest (stride 32) first:
	// "head.0.out", "head.1.out", "head.2.out".
	Outputs []string
	// Strides[i] is the stride of Outputs[i] relative to the input (32, 16, 8).
	Strides []int
	// NumClasses and AnchorsPerScale[i] define Outputs[i]'s channels:
	// AnchorsPerScale[i] * (5 + NumClasses).
	NumClasses      int
	AnchorsPerScale []int
}

// Shape is a per-image tensor shape, channels first: [C, H, W].
type Shape struct {
	C, H, W int
}

// String formats the shape as "CxHxW".
func (s Shape) String() string { return fmt.Sprintf("%dx%dx%d", s.C, s.H, s.W) }

// Numel is C*H*W.
func (s Shape) Numel() int64 { return int64(s.C) * int64(s.H) * int64(s.W) }

// LayerInfo is what Infer derives for one layer at one input size.
type LayerInfo struct {
	Layer
	In    []Shape // input shapes, in Inputs order
	Shape Shape   // output shape
	// Params counts trainable parameters as torch does: conv weight, conv bias
	// and BatchNorm weight and bias.
	Params int64
	// BNStats counts BatchNorm running mean and variance values (not trainable,
	// not in Params); 2*Out for ConvBNAct, 0 otherwise.
	BNStats int64
	// FLOPs is 2 x multiply-adds of the convolution for one image (bias,
	// BatchNorm, activations, pooling and adds are not counted), the counting
	// of torch_reference.py's conv_flops.
	FLOPs int64
}

// Inference is the result of Spec.Infer: every layer's shapes, parameters and
// FLOPs at one input size, in Spec order, and totals.
type Inference struct {
	Input   Shape
	Layers  []LayerInfo
	Params  int64 // sum of Layers[i].Params
	BNStats int64 // sum of Layers[i].BNStats
	FLOPs   int64 // sum of Layers[i].FLOPs
	index   map[string]int
}

// Lookup returns the info of the layer with this name or alias.
func (inf *Inference) Lookup(name string) (LayerInfo, bool) {
	i, ok := inf.index[name]
	if !ok {
		return LayerInfo{}, false
	}
	return inf.Layers[i], true
}

// Resolve maps an alias to its layer name; other names are returned unchanged.
func (s *Spec) Resolve(name string) string {
	for _, a := range s.Aliases {
		if a.Name == name {
			return a.Layer
		}
	}
	return name
}

// Layer returns the layer with this name or alias.
func (s *Spec) Layer(name string) (Layer, bool) {
	name = s.Resolve(name)
	for _, l := range s.Layers {
		if l.Name == name {
			return l, true
		}
	}
	return Layer{}, false
}

// CheckInputSize reports whether an input of h x w pixels can go through a
// YOLOv3 Spec: both must be positive multiples of 32 (the deepest stride), so
// that upsampled maps line up with the backbone maps they are joined to.
// Training and evaluation use 320..608 in steps of 32 (StandardSizes); other
// multiples of 32 are accepted.
func CheckInputSize(h, w int) error {
	if h <= 0 || w <= 0 || h%32 != 0 || w%32 != 0 {
		return fmt.Errorf("input size %dx%d: height and width must be positive multiples of 32", h, w)
	}
	return nil
}

// StandardSizes are the input sizes of multi-scale training: 320..608 in steps of 32.
func StandardSizes() []int {
	var s []int
	for n := 320; n <= 608; n += 32 {
		s = append(s, n)
	}
	return s
}

// Validate checks the Spec's structure without an input size: unique names,
// inputs that name earlier layers, input counts per kind, positive
// hyper-parameters, and aliases and outputs that name layers.
func (s *Spec) Validate() error {
	if s.InChannels <= 0 {
		return fmt.Errorf("spec %s: input channels %d must be positive", s.Name, s.InChannels)
	}
	seen := map[string]bool{InputName: true}
	for i, l := range s.Layers {
		if l.Name == "" || l.Name == InputName || seen[l.Name] {
			return fmt.Errorf("spec %s: layer %d: name %q empty, reserved or repeated", s.Name, i, l.Name)
		}
		for _, in := range l.Inputs {
			if !seen[in] {
				return fmt.Errorf("spec %s: layer %s: input %q is not an earlier layer", s.Name, l.Name, in)
			}
		}
		want := 1
		switch l.Kind {
		case ConvBNAct, Conv:
			c := l.Conv
			if c.Out <= 0 || c.K <= 0 || c.Stride <= 0 || c.Pad < 0 || c.Groups <= 0 || c.Out%c.Groups != 0 {
				return fmt.Errorf("spec %s: layer %s: bad conv parameters %+v", s.Name, l.Name, c)
			}
		case MaxPool:
			p := l.Pool
			if p.K <= 0 || p.Stride <= 0 || p.Pad < 0 || 2*p.Pad > p.K {
				return fmt.Errorf("spec %s: layer %s: bad pool parameters %+v", s.Name, l.Name, p)
			}
		case Upsample2x:
		case Concat:
			want = -2 // at least two
		case AddAct:
			want = 2
		default:
			return fmt.Errorf("spec %s: layer %s: unknown kind %d", s.Name, l.Name, int(l.Kind))
		}
		if (want > 0 && len(l.Inputs) != want) || (want < 0 && len(l.Inputs) < -want) {
			return fmt.Errorf("spec %s: layer %s (%s): %d inputs", s.Name, l.Name, l.Kind, len(l.Inputs))
		}
		seen[l.Name] = true
	}
	for _, a := range s.Aliases {
		if seen[a.Name] || !seen[a.Layer] || a.Layer == InputName {
			return fmt.Errorf("spec %s: alias %q -> %q: alias clashes with a layer or target is not a layer", s.Name, a.Name, a.Layer)
		}
	}
	if len(s.Outputs) != len(s.Strides) || len(s.Outputs) != len(s.AnchorsPerScale) {
		return fmt.Errorf("spec %s: %d outputs, %d strides, %d anchor counts", s.Name, len(s.Outputs), len(s.Strides), len(s.AnchorsPerScale))
	}
	for _, o := range s.Outputs {
		if _, ok := s.Layer(o); !ok {
			return fmt.Errorf("spec %s: output %q is not a layer", s.Name, o)
		}
	}
	return nil
}

// Infer validates the Spec and computes every layer's output shape,
// parameter count and FLOPs for one input image of h x w pixels. It checks
// that shapes agree where layers join (Concat, AddAct), that convolution
// groups divide the input channels, and that detection outputs have
// AnchorsPerScale[i]*(5+NumClasses) channels at stride Strides[i]. It does not
// apply CheckInputSize: callers that take sizes from users call that first.
func (s *Spec) Infer(h, w int) (*Inference, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if h <= 0 || w <= 0 {
		return nil, fmt.Errorf("spec %s: input size %dx%d must be positive", s.Name, h, w)
	}
	inf := &Inference{Input: Shape{s.InChannels, h, w}, index: map[string]int{}}
	shapes := map[string]Shape{InputName: inf.Input}
	for _, l := range s.Layers {
		li := LayerInfo{Layer: l}
		for _, in := range l.Inputs {
			li.In = append(li.In, shapes[in])
		}
		x := li.In[0]
		switch l.Kind {
		case ConvBNAct, Conv:
			c := l.Conv
			if x.C%c.Groups != 0 {
				return nil, fmt.Errorf("spec %s: layer %s: groups %d do not divide %d input channels", s.Name, l.Name, c.Groups, x.C)
			}
			oh, ow := (x.H+2*c.Pad-c.K)/c.Stride+1, (x.W+2*c.Pad-c.K)/c.Stride+1
			if x.H+2*c.Pad < c.K || x.W+2*c.Pad < c.K {
				return nil, fmt.Errorf("spec %s: layer %s: input %s smaller than kernel %d at %dx%d", s.Name, l.Name, x, c.K, h, w)
			}
			li.Shape = Shape{c.Out, oh, ow}
			weights := int64(c.Out) * int64(x.C/c.Groups) * int64(c.K*c.K)
			li.Params = weights
			if l.Kind == ConvBNAct {
				li.Params += 2 * int64(c.Out)
				li.BNStats = 2 * int64(c.Out)
			} else if l.Bias {
				li.Params += int64(c.Out)
			}
			li.FLOPs = 2 * int64(c.K*c.K) * int64(x.C/c.Groups) * li.Shape.Numel()
		case MaxPool:
			p := l.Pool
			if x.H+2*p.Pad < p.K || x.W+2*p.Pad < p.K {
				return nil, fmt.Errorf("spec %s: layer %s: input %s smaller than pool window %d", s.Name, l.Name, x, p.K)
			}
			li.Shape = Shape{x.C, (x.H+2*p.Pad-p.K)/p.Stride + 1, (x.W+2*p.Pad-p.K)/p.Stride + 1}
		case Upsample2x:
			li.Shape = Shape{x.C, 2 * x.H, 2 * x.W}
		case Concat:
			li.Shape = x
			for j, y := range li.In[1:] {
				if y.H != x.H || y.W != x.W {
					return nil, fmt.Errorf("spec %s: layer %s: input %s is %s, input %s is %s: H and W differ (input %dx%d)",
						s.Name, l.Name, l.Inputs[0], x, l.Inputs[j+1], y, h, w)
				}
				li.Shape.C += y.C
			}
		case AddAct:
			if li.In[1] != x {
				return nil, fmt.Errorf("spec %s: layer %s: inputs %s and %s differ (input %dx%d)", s.Name, l.Name, x, li.In[1], h, w)
			}
			li.Shape = x
		}
		if li.Shape.H <= 0 || li.Shape.W <= 0 {
			return nil, fmt.Errorf("spec %s: layer %s: empty output %s at input %dx%d", s.Name, l.Name, li.Shape, h, w)
		}
		shapes[l.Name] = li.Shape
		inf.index[l.Name] = len(inf.Layers)
		inf.Layers = append(inf.Layers, li)
		inf.Params += li.Params
		inf.BNStats += li.BNStats
		inf.FLOPs += li.FLOPs
	}
	for _, a := range s.Aliases {
		inf.index[a.Name] = inf.index[a.Layer]
	}
	for i, o := range s.Outputs {
		li, _ := inf.Lookup(o)
		want := Shape{s.AnchorsPerScale[i] * (5 + s.NumClasses), h / s.Strides[i], w / s.Strides[i]}
		if h%s.Strides[i] != 0 || w%s.Strides[i] != 0 || li.Shape != want {
			return nil, fmt.Errorf("spec %s: output %s is %s at input %dx%d, want %s (stride %d)", s.Name, o, li.Shape, h, w, want, s.Strides[i])
		}
	}
	return inf, nil
}

// Prefixed returns a copy of the Spec whose layer names, inputs, aliases and
// outputs all carry prefix (e.g. "teacher."), except InputName.
func (s *Spec) Prefixed(prefix string) *Spec {
	p := func(n string) string {
		if n == InputName {
			return n
		}
		return prefix + n
	}
	out := *s
	out.Layers = make([]Layer, len(s.Layers))
	for i, l := range s.Layers {
		l.Name = p(l.Name)
		ins := make([]string, len(l.Inputs))
		for j, in := range l.Inputs {
			ins[j] = p(in)
		}
		l.Inputs = ins
		out.Layers[i] = l
	}
	out.Aliases = make([]Alias, len(s.Aliases))
	for i, a := range s.Aliases {
		out.Aliases[i] = Alias{p(a.Name), p(a.Layer)}
	}
	out.Outputs = make([]string, len(s.Outputs))
	for i, o := range s.Outputs {
		out.Outputs[i] = p(o)
	}
	out.Strides = append([]int(nil), s.Strides...)
	out.AnchorsPerScale = append([]int(nil), s.AnchorsPerScale...)
	return &out
}

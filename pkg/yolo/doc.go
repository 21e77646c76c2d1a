// Package yolo describes the YOLOv3 detectors of this project as data.
//
// A Spec is an ordered list of named layers (ConvBNAct, Conv, MaxPool,
// Upsample2x, Concat, AddAct) with their inputs and hyper-parameters. New
// makes the Spec of a family member (MobileNetV1, ResNet18 or ResNet34
// backbone with width multipliers, the three-scale YOLOv3 head);
// Spec.Infer gives every layer's output shape, trainable parameter count and
// FLOPs at an input size without any tensor engine; Describe turns that into
// the report model-inspect prints (a table, or JSON). Engines (pkg/nn on
// gorgonia) build the graph by walking the Spec.
//
// Conventions:
//   - Shapes are per image, channels first: Shape{C, H, W}; tensors in an
//     engine are [N, C, H, W].
//   - Names are dotted and stable: "backbone.conv5_6.dw",
//     "backbone.res4f.add", "head.1.route", "head.2.out". Backbone feature
//     maps have the aliases "backbone.c3", "backbone.c4", "backbone.c5"
//     (strides 8, 16, 32). Head scale i = 0, 1, 2 is deepest first (stride
//     32, 16, 8): "head.i.route" is the DetectionBlock output, "head.i.tip" the
//     3x3 conv after it, "head.i.out" the detection output
//     [N, len(mask_i)*(5+C), H/stride, W/stride] with, per anchor, the logits
//     x, y, w, h, objectness and C class logits (PaddleDetection's order).
//   - Parameter counts are torch's: conv weights, conv biases, BatchNorm
//     weight and bias. BatchNorm running mean and variance are counted apart
//     (BNStats). FLOPs are 2 x multiply-adds of convolutions only.
//   - Input sizes must be multiples of 32 (CheckInputSize); training uses
//     320..608 in steps of 32 (StandardSizes). Infer itself accepts any size
//     whose shapes line up and reports an error naming the layer otherwise.
//   - Anchors are in input pixels; their type, defaults (masks and strides
//     too) and validation are pkg/anchor's.
//
// The networks follow ../shared/bench/torch_reference.py exactly (its
// parameter counts and FLOPs are the tests' reference: MobileNetV1-YOLOv3
// 24,248,097 parameters and 43.39 GFLOPs at 608 px, ResNet34-YOLOv3
// 41,981,729 and 88.43 GFLOPs, 20 classes). Where torch_reference.py departs
// from PaddleDetection, LayoutPaddle follows PaddleDetection instead; see
// its comment.
//
// Imports (make vet checks it): of this module only pkg/anchor, pkg/config,
// pkg/nn (the model as data; the runtime detector is pkg/detector); never
// gorgonia directly (pkg/nn is the only user).
package yolo

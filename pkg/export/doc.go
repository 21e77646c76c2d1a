// Package export writes a detector out for other runtimes: ONNX, opset 13
// (Export, Write). The graph follows pkg/yolo's Spec layer by layer (Conv,
// BatchNormalization folded into the convolution by default, Relu,
// LeakyRelu, MaxPool, Resize nearest x2, Concat, Add); the input is "image"
// [batch, 3, H, W] (H and W fixed or symbolic) and the outputs are the three
// head maps, or with Options.Decode PaddleDetection's yolo_box boxes and
// scores (NMS left to the runtime). The model's metadata carries what a
// runtime needs: anchors, masks, strides, class names, input normalisation,
// decoding and NMS settings.
//
// The ONNX protobuf types are generated into pkg/export/onnxpb.
//
// Imports (make vet checks it): of this module only pkg/atomicfile,
// pkg/detector, pkg/export/onnxpb, pkg/yolo; never gorgonia directly (pkg/nn
// is the only user).
package export

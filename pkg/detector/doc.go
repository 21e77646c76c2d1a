// Package detector is the YOLOv3 detector at run time: a model (pkg/yolo's
// Spec) with its parameters, one graph per input size built on demand
// (Detector.Net), inference (Predict, Detect, DetectImages: boxes in original
// image pixels after PaddleDetection's decoding and NMS), checkpoints in and
// out (ToCheckpoint, LoadCheckpoint, LoadPretrained), the one way every tool
// loads a model to run (Load) and the configuration to run it with (LoadConfig:
// -c, or the one stored in the checkpoint), and evaluation over a dataset split
// (DetectSplit, Evaluate, Score: VOC mAP or COCO AP exactly as pkg/metrics
// computes them).
//
// Memory: a graph whose input size would need more memory than the machine
// has available (AvailableMemory: MemAvailable, cgroup, ulimit -v,
// GOMEMLIMIT) is refused before anything is allocated, with the largest
// size that fits (CheckMemory, MemoryNeed; Net checks every new graph, the
// tools check the sizes a run asks for first: CheckSizes).
//
// Imports (make vet checks it): of this module only pkg/anchor,
// pkg/atomicfile, pkg/augment, pkg/box, pkg/checkpoint, pkg/config,
// pkg/dataset, pkg/draw, pkg/metrics, pkg/nn, pkg/weights, pkg/yolo,
// pkg/yolo/decode; never gorgonia directly (pkg/nn is the only user).
package detector

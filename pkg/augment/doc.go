// Package augment makes the training and evaluation views of detection
// images: PaddleDetection's YOLOv3 augmentations (mixup, colour distortion,
// random expand, random crop, horizontal flip, the per-batch input size and
// interpolation, normalisation) drawn as records (Record) that replay to the
// same pixels and boxes anywhere (Config.Apply, Config.Replay), and the one
// Loader every tool uses: batches in a fixed, counter-based order on worker
// goroutines, the same for any worker count, resumable from a Position
// (NewTrainLoader is the training configuration's loader). Images that cannot
// be loaded are skipped (Batch.Skipped, SkipTally and data.skip_limit).
//
// Box convention: targets are box.Box, half-open pixel xyxy of the current
// image (the input view after the augmentation).
//
// Imports (make vet checks it): of this module only pkg/box, pkg/config,
// pkg/dataset; never gorgonia, directly or through another package.
package augment

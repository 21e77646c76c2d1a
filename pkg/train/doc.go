// Package train is the training loop shared by detect-train and student-train:
// the learning-rate schedule, checkpoints and exact resume, the NaN guard,
// progress on stderr and metrics as JSON lines in the run folder.
//
// Run trains a detector.Detector built from a configuration. The YOLOv3 loss
// (pkg/yolo/loss) is attached to every training graph under the name "yolo";
// Hooks.Attach attaches more losses to each graph when it is built (one graph
// per input size, multi-scale training) and Hooks.Prepare feeds per-batch
// data to them before each step, so a distillation loss is one more attached
// loss; Hooks.Watch sees every step's losses (student-train's
// runaway-distillation warning). Batches come from a Source (OpenLoader: the configuration's training
// split through pkg/dataset's Loader); student-train can supply its own,
// for example views rebuilt from a soft-target file, as long as its State
// restores its position exactly.
//
// Iterations are counted from 1 everywhere a user reads a number: the
// record "iter": N in metrics.jsonl, the progress line "iter N/max", the
// plots' x axis, "evaluation after N iterations" and the checkpoint
// model_<N>.ckpt all mean the state after N completed iterations, and
// "iteration N" in a message is the N-th step (the one that completes N).
// Resuming from model_<N>.ckpt runs iteration N+1 next. Only Hooks.Prepare
// receives the count of iterations completed before its step.
//
// Data parallel (Options.Dist, see Run): every rank of an MPI job runs the
// same loop on its share of each global batch of train.batch_size images,
// with synchronised BatchNorm and gradients summed in rank order (pkg/dist),
// so every rank holds the same parameters; rank 0 alone reads weights (and
// broadcasts them), writes and reports. The ranks agree at fixed points of
// every iteration, so a signal, a non-finite loss or an error on any rank
// stops all of them after the same iteration, with a checkpoint.
//
// Imports (make vet checks it): of this module only pkg/atomicfile,
// pkg/augment, pkg/checkpoint, pkg/config, pkg/dataset, pkg/detector,
// pkg/dist, pkg/metrics, pkg/nn, pkg/weights, pkg/yolo, pkg/yolo/loss (never
// distillation: student-train adds it through Hooks); never gorgonia directly
// (pkg/nn is the only user).
package train

// Package teacher owns the teacher's outputs for a training batch: a
// distill.Teacher that is either Online (a teacher detector run on the
// student's batch) or Offline (soft targets replayed with their views by the
// Replay batch source), the soft-target metadata a configuration implies
// (Meta, Want, CheckStudent), stacking per-image tensors into batch tensors
// and back (Stack, Unstack), and writing soft targets (Dump, teacher-dump's
// whole job). Session puts a student's distillation into pkg/train's loop
// (student-train's whole job).
//
// Offline and online give the same tensors for the same views: teacher-dump
// and student-train use the same training loader (augment.NewTrainLoader),
// and Replay rebuilds each stored view from its record, dropping a view whose
// image cannot be loaded together with its soft targets. Every dumped view
// carries the hash of its pixels (softtarget.View.PixelHash) and the dump the
// data settings it read (DataSettings); Replay compares each rebuilt view
// with its hash and stops at the first that differs, naming the image, the
// view and the settings that differ.
//
// Imports (make vet checks it): of this module only pkg/atomicfile,
// pkg/augment, pkg/checkpoint, pkg/config, pkg/dataset, pkg/detector,
// pkg/distill, pkg/softtarget, pkg/train, pkg/yolo; never gorgonia directly
// (pkg/nn is the only user).
package teacher

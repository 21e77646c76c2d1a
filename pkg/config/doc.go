// Package config holds the one configuration type of every yolodistill tool:
// the model, its loss, the data and augmentation, the training schedule, the
// evaluation and the distillation recipe.
//
// A configuration is built in three layers: Defaults, then a YAML file
// (optionally inheriting from another file through a top-level `_base_: path`
// key, resolved relative to the inheriting file), then `-o key=value`
// overrides. Keys are the dotted yaml names of the fields
// ("train.base_lr", "model.anchors", "distill.pairs.0.kind"); a numeric path
// segment indexes a list. Every value is parsed as YAML and checked against
// the field's Go type: an integer field rejects 1.5, a bool field rejects 1, a
// fixed-size list rejects the wrong length. Unknown keys are errors that
// suggest the nearest known key. Validate runs after the merge.
//
// A student's teacher is distill.teacher (relative to the student's file)
// with distill.teacher_overrides applied: LoadTeacher, the one rule every
// tool that checks a teacher's model hash (ModelHash, over ModelText)
// follows; DiffModelText names the keys two teachers differ in.
//
// Units: anchors are in input pixels (width, height); sizes are square input
// sizes in pixels; learning-rate milestones and every "iter" count are
// optimizer steps (iterations), not epochs, except augment.mixup.epochs.
//
// docs/config.md, the reference of every key (type, default, meaning), is
// generated from these types and their field comments by go generate (a
// test, TestConfigReference, fails when it is stale or a key has no
// comment).
//
// Imports (make vet checks it): of this module only pkg/anchor; never
// gorgonia, directly or through another package.
package config

//go:generate go test -run TestConfigReference . -args -update

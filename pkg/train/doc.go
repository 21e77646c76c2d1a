// Package train is the training loop shared by detect-train and student-train:
// the learning-rate schedule, checkpoints and exact resume, the NaN guard,
// progress on stderr and metrics as JSON lines in the run folder.
package train

// Package detectortest makes detector checkpoints for tests: a freshly
// initialised model of a configuration, saved where a tool can load it; and
// compares the checkpoints of two trainings that must agree within float
// tolerances (one process against data-parallel ranks). Only tests import
// it.
//
// Imports (make vet checks it): of this module only pkg/checkpoint,
// pkg/config, pkg/detector; never gorgonia directly (pkg/nn is the only
// user).
package detectortest

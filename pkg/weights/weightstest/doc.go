// Package weightstest is a test kit for the foreign weight formats: the
// fixtures testdata/weights/gen_fixtures.py wrote (small files in every
// format pkg/weights reads, with PyTorch's forward outputs on one input),
// the configuration each fixture's model needs, and a comparison of our
// outputs with PyTorch's at a relative tolerance.
//
// Imports (make vet checks it): nothing of this module; never gorgonia
// directly (pkg/nn is the only user).
package weightstest

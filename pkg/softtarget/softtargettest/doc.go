// Package softtargettest makes random soft-target views for tests, in the
// style of testing/fstest: the metadata of a fake YOLOv3 teacher (Meta), views
// of random teacher outputs with a chosen objectness distribution (Gen), and
// the round trip through pkg/softtarget's writer and reader (WriteStream,
// WriteFile, ReadAll, RoundTrip).
//
// Only tests import it. pkg/softtarget's own tests that use it are in the
// external test package softtarget_test (an internal test of softtarget
// cannot import a package that imports softtarget).
//
// Imports (make vet checks it): of this module only pkg/anchor,
// pkg/softtarget; never gorgonia directly (pkg/nn is the only user).
package softtargettest

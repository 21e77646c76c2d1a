// Package atomicfile writes files so that a reader never sees a partial file:
// the data goes to a temporary file in the destination's folder, is synced to
// disk, and is renamed over the destination only when everything succeeded.
// Check and CheckDir tell before any work whether such a write can succeed
// (not a folder where a file is meant, a folder this process can write in),
// so that tools refuse a bad output path before they spend time on the work.
//
// Imports (make vet checks it): nothing of this module; never gorgonia,
// directly or through another package.
package atomicfile

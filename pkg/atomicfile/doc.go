// Package atomicfile writes files so that a reader never sees a partial file:
// the data goes to a temporary file in the destination's folder, is synced to
// disk, and is renamed over the destination only when everything succeeded.
//
// Imports (make vet checks it): nothing of this module; never gorgonia,
// directly or through another package.
package atomicfile

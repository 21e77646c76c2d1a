// Package box holds axis-aligned boxes and the geometry detectors need: area,
// intersection over union, and non-maximum suppression.
//
// Conventions: a Box is half-open [X0, X1) x [Y0, Y1) in pixels of the image it
// belongs to, origin at the top-left corner, x to the right, y down. Width is
// X1-X0 (no +1); a box with X1 <= X0 or Y1 <= Y0 is empty and has area 0.
// Formats with other conventions (VOC's inclusive 1-based pixels, COCO's
// x,y,w,h) are converted at their readers and writers, not here.
//
// Imports (make vet checks it): nothing of this module; never gorgonia,
// directly or through another package.
package box

// Package dataset reads detection datasets (Pascal VOC folders, COCO JSON, the
// built-in synthetic set) into one Sample type, writes them, validates them,
// decodes their images (Source, DatasetSource), opens a configuration's split
// (OpenSplit, DetectFormat), and draws the random numbers every random choice
// of the project derives from (RNG). The augmentations are pkg/augment's.
//
// Box convention: every Box in this package is box.Box, half-open pixel xyxy in
// the image's own pixel grid (origin top-left). VOC's inclusive 1-based
// coordinates and COCO's x,y,w,h are converted at the readers and writers.
//
// Hostile inputs: the readers bound what a file can make them do (Limits:
// objects per image, annotation file size; DefaultMaxPixels for images, read
// from the header before decoding), and the duplicate-box check takes linear
// time with at most MaxDuplicatesListed+1 problems per image.
//
// Imports (make vet checks it): of this module only pkg/anchor,
// pkg/atomicfile, pkg/box, pkg/config; never gorgonia, directly or through
// another package.
package dataset

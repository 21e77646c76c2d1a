// Package draw paints detections onto images for detect-infer: a box outline
// per detection in its class's colour and a filled tag holding "class 0.87".
//
// Conventions:
//   - Boxes are pkg/box boxes: half-open pixel xyxy in the destination image's
//     pixel grid, origin top-left. A box covers the pixels x in
//     [floor(X0), ceil(X1)), y in [floor(Y0), ceil(Y1)); the outline lies on
//     the inside of that rectangle, so its outer edge is the box's edge.
//   - The destination is an *image.RGBA, modified in place (it is the dst
//     argument of every drawing function). Anything falling outside its bounds
//     is clipped: boxes partly or wholly outside the image, empty boxes and
//     boxes with NaN or infinite coordinates never panic (a box with a
//     non-finite coordinate is skipped).
//   - Tags are clamped inside the image when the image is large enough to
//     hold them.
//
// Imports (make vet checks it): of this module only pkg/atomicfile, pkg/box;
// never gorgonia, directly or through another package.
package draw

// Package softtarget stores a teacher detector's outputs ("soft targets") for
// replayable augmented views in a versioned Apache Arrow format, and reads them
// back as plain Go slices.
//
// # Layout
//
// One Arrow row per (image, view). The columns, in order:
//
//	image_id        int64
//	file            utf8                 image path as the dataset names it
//	view            int32                view index within the image (>= 0)
//	aug             binary               the view's augmentation record (opaque; pkg/dataset's)
//	input_h,input_w int32                network input size of the view, pixels
//	out<s>.h/.w     int32                grid of scale s (s = 0 is the deepest, stride 32)
//	out<s>          list<float32|float16>  dense encodings: the head output, [A*(5+C), H, W] row-major
//	out<s>.obj      list<float32|float16>  sparse: objectness logit of every anchor cell, [A, H, W]
//	out<s>.idx      list<int32>            sparse: stored cells, a*H*W + y*W + x, strictly increasing
//	out<s>.box_cls  list<float32|float16>  sparse: per stored cell x, y, w, h, cls[C] logits, [n, 4+C]
//	feat.<name>       list<float32|float16>  named feature map, row-major
//	feat.<name>.shape list<int32>            its shape
//	view_sha256     binary               SHA-256 of the view's input pixels (View.PixelHash; version 2)
//	crc32c          uint32               CRC-32C of the row's values in every other column
//
// Channel layout of a head output is PaddleDetection's: for anchor a of the
// scale's mask, channels a*(5+C)+0..4 are the x, y, w, h, objectness logits and
// a*(5+C)+5+k is class k's logit. Arrow's IPC reader does not copy buffers, so
// a list<float32> row and a binary row holding the same bytes both decode as
// one copy; BenchmarkLayout showed no difference beyond noise, and lists keep
// the element type visible to other Arrow readers. FixedSizeList is
// not usable because the grid changes with the input size (multi-scale
// training). Values are stored in little-endian order (the only byte order
// this package supports).
//
// Every row carries a CRC-32C of its values, checked on read: a flipped bit in
// a teacher output is an error, not a silently different soft target.
//
// The schema version is 2 (Version); version 1 files, without view_sha256,
// are still read (their views carry no PixelHash).
//
// The schema metadata carries the format name and version, the teacher's
// config hash, class list, anchors and masks, channel counts per scale, the
// encoding, the feature names and the augmentation settings the views' replay
// depends on (see the Key* constants and Meta.Replay).
//
// # End marker
//
// The last record batch of every stream and file is a zero-row trailer whose
// message metadata holds the number of views, the rows of every batch and the
// (image id, view) of every row. A reader that reaches the end of the input
// without a valid trailer, followed by Arrow's end-of-stream marker, reports an
// error: a truncated stream or file is never a clean end.
//
// # Sparse encodings
//
// Sparse keeps the objectness logit of every anchor cell and, only where the
// teacher is confident (sigmoid(obj) >= Threshold, decided on the teacher's
// float32 logit), the x, y, w, h and class logits. Decoding yields dense
// outputs in which the entries that were not stored are 0 and View.Stored marks
// the cells that were. What that means for the distillation losses:
//   - fine-grained (split_distill): L_obj reads only objectness, exact. L_reg
//     and L_cls weight every cell by sigmoid(obj_t) and obj_t is exact; a cell
//     that was not stored has weight < Threshold, and a loss that multiplies its
//     weight by Stored drops exactly those cells (error bounded by Threshold
//     times the per-cell term, and ~0 for the very negative logits of background).
//     Without the mask the zero fill acts as a teacher saying "0.5" for x, y and
//     classes and 0 for w, h at those cells, still weighted by sigmoid(obj_t).
//   - l2 (mean squared difference of all logits) reads every entry: sparse is
//     lossy for it; use dense32 or dense16.
//
// Imports (make vet checks it): of this module only pkg/anchor,
// pkg/atomicfile; never gorgonia, directly or through another package.
package softtarget

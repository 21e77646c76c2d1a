package teacher

import (
	"crypto/sha256"
	"encoding/binary"
	"slices"
	"unsafe"
)

// viewCache keeps the teacher's outputs for input pixels it has already run,
// so that a view whose pixels repeat an earlier view's (with horizontal flips
// as the only augmentation at one input size, every image has just two
// distinct views, however many epochs are dumped) is written from memory
// instead of running the teacher again. The teacher runs in inference mode
// (BatchNorm running statistics) and every kernel computes each image of a
// batch on its own, so an image's outputs do not depend on the other images of
// its batch: the file is byte-identical with and without the cache (tested).
//
// Entries are keyed by the SHA-256 of the input size and the float32 pixels
// of one image. Once limit bytes of outputs are held, new entries are not
// added (the entries kept are those of the first views, which is what repeats
// when every epoch shows the same views).
type viewCache struct {
	limit, used int64
	m           map[[sha256.Size]byte]*cachedView
}

// cachedView is one image's teacher outputs: per head output, then per
// requested feature map, that image's slice ([C, H, W] flattened).
type cachedView struct {
	outs  [][]float32
	feats [][]float32
}

func newViewCache(limitBytes int64) *viewCache {
	return &viewCache{limit: limitBytes, m: map[[sha256.Size]byte]*cachedView{}}
}

// viewKey hashes the input size and one image's pixels ([3, size, size],
// float32 in this machine's byte order: little-endian, the only order the
// soft-target format supports): the view cache's key, and the view's pixel
// hash in soft-target files (softtarget.View.PixelHash), which student-train
// compares with the pixels it rebuilds.
func viewKey(size int, pix []float32) [sha256.Size]byte {
	h := sha256.New()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(size))
	h.Write(b[:])
	if len(pix) > 0 {
		h.Write(unsafe.Slice((*byte)(unsafe.Pointer(&pix[0])), 4*len(pix)))
	}
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

// get returns the cached outputs for k, or nil.
func (c *viewCache) get(k [sha256.Size]byte) *cachedView {
	if c == nil {
		return nil
	}
	return c.m[k]
}

// put stores copies of outs and feats under k while the limit allows.
func (c *viewCache) put(k [sha256.Size]byte, outs, feats [][]float32) {
	if c == nil || c.m[k] != nil {
		return
	}
	var n int64
	for _, o := range outs {
		n += 4 * int64(len(o))
	}
	for _, f := range feats {
		n += 4 * int64(len(f))
	}
	if c.used+n > c.limit {
		return
	}
	v := &cachedView{outs: make([][]float32, len(outs)), feats: make([][]float32, len(feats))}
	for i, o := range outs {
		v.outs[i] = slices.Clone(o)
	}
	for i, f := range feats {
		v.feats[i] = slices.Clone(f)
	}
	c.m[k] = v
	c.used += n
}

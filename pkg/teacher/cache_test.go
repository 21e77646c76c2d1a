package teacher

import (
	"slices"
	"testing"
)

func TestViewCacheLimitAndCopies(t *testing.T) {
	c := newViewCache(100) // bytes: room for two entries of 12 floats (48 bytes)
	px := func(v float32) []float32 { return []float32{v, v, v} }
	k1, k2, k3 := viewKey(2, px(1)), viewKey(2, px(2)), viewKey(2, px(3))
	if k1 == k2 || viewKey(2, px(1)) != k1 || viewKey(3, px(1)) == k1 {
		t.Fatal("keys must depend on exactly the size and the pixels")
	}
	outs := [][]float32{make([]float32, 8)}
	feats := [][]float32{make([]float32, 4)}
	outs[0][0] = 7
	c.put(k1, outs, feats)
	outs[0][0] = 8 // the cache holds a copy
	c.put(k2, outs, feats)
	c.put(k3, outs, feats) // over the limit: not stored
	if v := c.get(k1); v == nil || v.outs[0][0] != 7 || len(v.feats[0]) != 4 {
		t.Fatalf("entry 1: %+v", v)
	}
	if v := c.get(k2); v == nil || !slices.Equal(v.outs[0], outs[0]) {
		t.Fatalf("entry 2: %+v", v)
	}
	if c.get(k3) != nil || c.used != 96 {
		t.Fatalf("third entry stored past the limit (used %d bytes)", c.used)
	}
	var nilCache *viewCache
	if nilCache.get(k1) != nil {
		t.Fatal("a nil cache returned an entry")
	}
	nilCache.put(k1, outs, feats) // no panic
}

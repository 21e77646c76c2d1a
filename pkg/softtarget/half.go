package softtarget

import "math"

// halfToFloat maps every IEEE binary16 bit pattern to its float32 value,
// subnormals included (arrow's float16.Num.Float32 flushes them to zero).
var halfToFloat = func() *[1 << 16]float32 {
	var t [1 << 16]float32
	for h := range t {
		t[h] = halfBitsToFloat(uint16(h))
	}
	return &t
}()

func halfBitsToFloat(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	man := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // Inf, NaN (payload kept)
		return math.Float32frombits(sign | 0xff<<23 | man<<13)
	case exp != 0:
		return math.Float32frombits(sign | (exp+127-15)<<23 | man<<13)
	default: // zero or subnormal: man * 2^-24
		v := float32(man) * (1.0 / (1 << 24))
		return math.Float32frombits(sign | math.Float32bits(v))
	}
}

// floatToHalf converts f to binary16 bits, rounding to nearest, ties to even;
// values beyond the half range become +-Inf, NaN stays NaN, and results below
// the normal range become subnormals or signed zero.
func floatToHalf(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	if a := b & 0x7fffffff; a-0x38800000 < 0x47800000-0x38800000 {
		// Fast path, 2^-14 <= |f| < 65536: rebias the exponent (127-15 = 112,
		// 112<<23 = 0x38000000) and round the 13 dropped bits to nearest even;
		// a carry moves into the exponent and, past 65504, on to Inf.
		r := a - 0x38000000
		r += 0xfff + (r>>13)&1
		return sign | uint16(r>>13)
	}
	exp := int32(b>>23) & 0xff
	man := b & 0x7fffff
	if exp == 0xff {
		if man != 0 {
			return sign | 0x7e00 | uint16(man>>13) // quiet NaN
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		// Subnormal half (or zero): value = m * 2^-24, m = round(full * 2^(e-1-13)).
		if e < -10 {
			return sign // below half of the smallest subnormal
		}
		full := man | 0x800000  // 24-bit significand
		shift := uint32(14 - e) // 14..24
		m := full >> shift
		rem := full & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rem > half || (rem == half && m&1 == 1) {
			m++
		}
		return sign | uint16(m) // m may carry into the smallest normal: still correct bits
	}
	m := man >> 13
	rem := man & 0x1fff
	h := uint32(e)<<10 | m
	if rem > 0x1000 || (rem == 0x1000 && m&1 == 1) {
		h++ // may carry into the exponent, up to Inf: correct
	}
	return sign | uint16(h)
}

package augment

import (
	"encoding/binary"
	"fmt"
	"math"
)

// RecordVersion is the version byte of the binary Record layout.
const RecordVersion = 1

// RecordSize is the length in bytes of an encoded Record (version 1).
const RecordSize = 101

// viewRecordMagic starts every encoded Record.
var viewRecordMagic = [2]byte{'V', 'R'}

// MarshalBinary encodes the record in a fixed little-endian layout of
// RecordSize bytes:
//
//	0  "VR", version (1), flags (bit 0 expand, 1 crop, 2 flip, 4..7 ColorOn[0..3])
//	4  Sample int64, Partner int64, MixFactor float64 (IEEE bits)
//	28 ColorOrder [4]uint8, ColorDelta [4]float64
//	64 ExpandX, ExpandY, ExpandW, ExpandH int32
//	80 CropX, CropY, CropW, CropH int32
//	96 Size int32, Interp uint8
//
// Floats are stored as their exact bits, so decoding gives back the same record.
func (r Record) MarshalBinary() ([]byte, error) {
	return r.AppendBinary(make([]byte, 0, RecordSize))
}

// AppendBinary appends the MarshalBinary encoding to b.
func (r Record) AppendBinary(b []byte) ([]byte, error) {
	var flags byte
	if r.Expand {
		flags |= 1
	}
	if r.Crop {
		flags |= 2
	}
	if r.Flip {
		flags |= 4
	}
	for i, on := range r.ColorOn {
		if on {
			flags |= 16 << i
		}
	}
	le := binary.LittleEndian
	b = append(b, viewRecordMagic[0], viewRecordMagic[1], RecordVersion, flags)
	b = le.AppendUint64(b, uint64(r.Sample))
	b = le.AppendUint64(b, uint64(r.Partner))
	b = le.AppendUint64(b, math.Float64bits(r.MixFactor))
	b = append(b, r.ColorOrder[:]...)
	for _, d := range r.ColorDelta {
		b = le.AppendUint64(b, math.Float64bits(d))
	}
	for _, v := range [...]int32{r.ExpandX, r.ExpandY, r.ExpandW, r.ExpandH, r.CropX, r.CropY, r.CropW, r.CropH, r.Size} {
		b = le.AppendUint32(b, uint32(v))
	}
	b = append(b, byte(r.Interp))
	return b, nil
}

// UnmarshalBinary decodes a MarshalBinary encoding. It fails on a wrong
// length, magic or version, or a field out of its range (colour order not a
// permutation, unknown interpolation, negative sizes).
func (r *Record) UnmarshalBinary(b []byte) error {
	if len(b) < 4 || b[0] != viewRecordMagic[0] || b[1] != viewRecordMagic[1] {
		return fmt.Errorf("view record: not a view record (bad magic)")
	}
	if b[2] != RecordVersion {
		return fmt.Errorf("view record: version %d, this program reads version %d", b[2], RecordVersion)
	}
	if len(b) != RecordSize {
		return fmt.Errorf("view record: %d bytes, want %d", len(b), RecordSize)
	}
	le := binary.LittleEndian
	flags := b[3]
	var x Record
	x.Expand, x.Crop, x.Flip = flags&1 != 0, flags&2 != 0, flags&4 != 0
	for i := range x.ColorOn {
		x.ColorOn[i] = flags&(16<<i) != 0
	}
	x.Sample = int64(le.Uint64(b[4:]))
	x.Partner = int64(le.Uint64(b[12:]))
	x.MixFactor = math.Float64frombits(le.Uint64(b[20:]))
	copy(x.ColorOrder[:], b[28:32])
	for i := range x.ColorDelta {
		x.ColorDelta[i] = math.Float64frombits(le.Uint64(b[32+8*i:]))
	}
	ints := make([]int32, 9)
	for i := range ints {
		ints[i] = int32(le.Uint32(b[64+4*i:]))
	}
	x.ExpandX, x.ExpandY, x.ExpandW, x.ExpandH = ints[0], ints[1], ints[2], ints[3]
	x.CropX, x.CropY, x.CropW, x.CropH = ints[4], ints[5], ints[6], ints[7]
	x.Size = ints[8]
	x.Interp = Interp(b[100])

	var seen [4]bool
	for _, op := range x.ColorOrder {
		if op > 3 || seen[op] {
			return fmt.Errorf("view record: colour order %v is not a permutation of 0..3", x.ColorOrder)
		}
		seen[op] = true
	}
	if x.Interp >= numInterps {
		return fmt.Errorf("view record: unknown interpolation %d", x.Interp)
	}
	if x.Size <= 0 || x.ExpandW < 0 || x.ExpandH < 0 || x.CropW < 0 || x.CropH < 0 || x.Sample < 0 || x.Partner < -1 {
		return fmt.Errorf("view record: field out of range (sample %d, partner %d, size %d)", x.Sample, x.Partner, x.Size)
	}
	if math.IsNaN(x.MixFactor) {
		return fmt.Errorf("view record: mixup factor is NaN")
	}
	*r = x
	return nil
}

package dataset

import (
	"math"

	"yolodistill/pkg/box"
)

// MaxDuplicatesListed bounds the box-duplicate warnings of one image: the
// first ones get a line each, the rest one summary line.
const MaxDuplicatesListed = 3

// findDuplicates reports the objects (kept boxes, all valid and non-empty)
// whose box has an IoU >= DuplicateIoU with an earlier object's box of the
// same class, in object order: MaxDuplicatesListed warnings naming both
// objects, then, if there are more, one warning counting them. lines[i] and
// idx[i] are object i's line and original index.
//
// Each object is compared with the earlier objects that are not themselves
// duplicates (a cluster of copies is reported against its first box), and
// only with those whose boxes can reach the threshold: IoU >= t > 1/2 implies
// that widths (and heights) differ by less than a factor 2 and that the left
// edges (and top edges) lie within (1-t) times the wider box of each other.
// Boxes are indexed by class, by the binary exponents of their width and
// height and by a grid over their top-left corners with cells as wide as
// those exponents say, so that each object looks only at the boxes of a
// bounded neighbourhood (3^4 cells) that are not duplicates of each other:
// 3,000 copies of one box cost 3,000 comparisons, not 4.5 million.
func findDuplicates(objs []Object, lines, idx []int, file string) Problems {
	of := duplicateOf(objs)
	var ps Problems
	count, unlisted := 0, -1 // unlisted: the first object not given a line of its own
	for j, i := range of {
		if i < 0 {
			continue
		}
		count++
		if count <= MaxDuplicatesListed {
			ps.add(file, lines[j], Warning, KindBoxDuplicate, "object %d: box %s overlaps object %d's box %s of the same class with IoU %.3f; probably annotated twice, both kept",
				idx[j], fmtBox(objs[j].Box), idx[i], fmtBox(objs[i].Box), box.IoU(objs[i].Box, objs[j].Box))
		} else if unlisted < 0 {
			unlisted = j
		}
	}
	if count > MaxDuplicatesListed {
		ps.add(file, lines[unlisted], Warning, KindBoxDuplicate, "object %d and %d more objects overlap an earlier box of their class with IoU >= %g (%d in all, of %d objects); probably annotated more than once, all kept",
			idx[unlisted], count-MaxDuplicatesListed-1, DuplicateIoU, count, len(objs))
	}
	return ps
}

// duplicateOf returns, for every object, the first earlier object that is
// not itself a duplicate and whose box of the same class has an IoU >=
// DuplicateIoU with it, or -1 (see findDuplicates).
func duplicateOf(objs []Object) []int {
	type cell struct {
		label, ew, eh int
		cx, cy        int64
	}
	of := make([]int, len(objs))
	grid := map[cell][]int32{} // representatives: objects that are no duplicate
	for j, o := range objs {
		b := o.Box
		ew, eh := exponent(b.W()), exponent(b.H())
		best := -1
		for dw := -1; dw <= 1; dw++ {
			for dh := -1; dh <= 1; dh++ {
				sw, sh := math.Ldexp(1, ew+dw), math.Ldexp(1, eh+dh)
				cx, cy := int64(math.Floor(b.X0/sw)), int64(math.Floor(b.Y0/sh))
				for dx := int64(-1); dx <= 1; dx++ {
					for dy := int64(-1); dy <= 1; dy++ {
						for _, i := range grid[cell{o.Label, ew + dw, eh + dh, cx + dx, cy + dy}] {
							if (best < 0 || int(i) < best) && box.IoU(objs[i].Box, b) >= DuplicateIoU {
								best = int(i)
							}
						}
					}
				}
			}
		}
		of[j] = best
		if best < 0 {
			sw, sh := math.Ldexp(1, ew), math.Ldexp(1, eh)
			k := cell{o.Label, ew, eh, int64(math.Floor(b.X0 / sw)), int64(math.Floor(b.Y0 / sh))}
			grid[k] = append(grid[k], int32(j))
		}
	}
	return of
}

// exponent is e with 2^(e-1) <= v < 2^e for v > 0 (math.Frexp: exact).
func exponent(v float64) int {
	_, e := math.Frexp(v)
	return e
}

package nn

import (
	"fmt"
)

// BatchSync joins the training-mode BatchNorm layers of the graphs on a
// ParamSet across the processes of a data-parallel run (synchronised
// BatchNorm, as PaddleDetection's sync_bn and torch's SyncBatchNorm): each
// process holds a share of a global batch, and every BatchNorm normalises
// with the statistics of the whole global batch. pkg/dist's Comm implements
// it.
type BatchSync interface {
	// SumFloat64 replaces buf, on every process, by the element-wise sum of
	// every process's buf, added in a fixed process order so that every
	// process gets the same bits; what names the sum for error messages.
	// Every process calls it with the same length at the same point.
	SumFloat64(what string, buf []float64) error
}

// SetBatchSync makes the training-mode BatchNorm of every graph on ps use
// the statistics of the global batch through s (nil: the graph's own batch,
// the default). Per layer and step, the forward pass sums per channel the
// count, the sum and then the squared deviations from the global mean over
// the processes, and the backward pass the two per-channel sums that dx
// needs; the running statistics are updated from the global batch's mean and
// variance, so they stay the same on every process. dscale and dbias stay
// the gradients of this process's share (they add up over the processes like
// every other parameter gradient). Every process must run the same graphs in
// the same order.
func (ps *ParamSet) SetBatchSync(s BatchSync) { ps.sync = s }

// bnSyncScratch holds a synchronised BatchNorm layer's sums.
type bnSyncScratch struct {
	buf   []float64
	count float64 // the global batch's N*HW, saved by the forward pass
	what  [3]string
}

func newBNSyncScratch(name string) *bnSyncScratch {
	return &bnSyncScratch{what: [3]string{
		"BatchNorm " + name + ": count and sums",
		"BatchNorm " + name + ": squared deviations",
		"BatchNorm " + name + ": gradient sums",
	}}
}

func (s *bnSyncScratch) get(n int) []float64 {
	if cap(s.buf) < n {
		s.buf = make([]float64, n)
	}
	return s.buf[:n]
}

// bnForwardTrainSync is bnForwardTrain over the global batch: the
// per-channel sums of this share are summed over the processes by sync. With
// one process it computes the same bits as bnForwardTrain.
// x, y: [N, C, HW]; gamma, beta, mean, invstd, runMean, runVar: [C].
func bnForwardTrainSync(g *bnGeom, sync BatchSync, sc *bnSyncScratch, x, gamma, beta, y, mean, invstd, runMean, runVar []float32) error {
	C := g.C
	buf := sc.get(C + 1)
	if g.blk > 0 {
		parallelFor(C/g.blk, func(_, lo, hi int) {
			for b := lo; b < hi; b++ {
				clear(buf[b*g.blk : b*g.blk+g.blk])
				blkSums(g, x, b, buf[b*g.blk:b*g.blk+g.blk])
			}
		})
	} else {
		parallelFor(C, func(_, lo, hi int) {
			for c := lo; c < hi; c++ {
				var s float64
				for n := 0; n < g.N; n++ {
					s += sum64(x[(n*g.C+c)*g.HW : (n*g.C+c+1)*g.HW])
				}
				buf[c] = s
			}
		})
	}
	buf[C] = float64(g.N * g.HW)
	if err := sync.SumFloat64(sc.what[0], buf); err != nil {
		return err
	}
	M := buf[C]
	if !(M >= 1) {
		return fmt.Errorf("BatchNorm over a global batch of %v values", M)
	}
	sc.count = M
	if g.blk > 0 {
		parallelFor(C/g.blk, func(_, lo, hi int) {
			for b := lo; b < hi; b++ {
				for c := b * g.blk; c < b*g.blk+g.blk; c++ {
					mean[c] = float32(buf[c] / M)
					buf[c] = 0
				}
				blkSqDevs(g, x, b, mean[b*g.blk:b*g.blk+g.blk], buf[b*g.blk:b*g.blk+g.blk])
			}
		})
	} else {
		parallelFor(C, func(_, lo, hi int) {
			for c := lo; c < hi; c++ {
				mu := float32(buf[c] / M)
				mean[c] = mu
				buf[c] = bnSqDev(g, x, c, mu)
			}
		})
	}
	if err := sync.SumFloat64(sc.what[1], buf[:C]); err != nil {
		return err
	}
	if g.blk > 0 {
		parallelFor(C/g.blk, func(_, lo, hi int) {
			for b := lo; b < hi; b++ {
				bnBlkNormalise(g, b, x, y, gamma, beta, mean, buf[b*g.blk:b*g.blk+g.blk], M, invstd, runMean, runVar)
			}
		})
		return nil
	}
	parallelFor(C, func(_, lo, hi int) {
		for c := lo; c < hi; c++ {
			bnNormalise(g, c, x, y, gamma, beta, mean[c], buf[c], M, invstd, runMean, runVar)
		}
	})
	return nil
}

// bnBackwardSync is bnBackward over the global batch: dgamma and dbeta are
// this share's, dx uses the sums over every process's share (sync) and the
// global count the forward pass saved. With one process it computes the same
// bits as bnBackward.
func bnBackwardSync(g *bnGeom, sync BatchSync, sc *bnSyncScratch, x, y, gamma, mean, invstd, dy, dx, dgamma, dbeta []float32) error {
	C := g.C
	buf := sc.get(2 * C)
	if g.blk > 0 {
		return bnBackwardSyncBlk(g, sync, sc, buf, x, y, gamma, mean, invstd, dy, dx, dgamma, dbeta)
	}
	parallelFor(C, func(_, lo, hi int) {
		for c := lo; c < hi; c++ {
			mu := mean[c]
			var sdz, sdzx float64
			for n := 0; n < g.N; n++ {
				off := (n*g.C + c) * g.HW
				for i0 := 0; i0 < g.HW; i0 += 512 {
					i1 := min(i0+512, g.HW)
					a, b := bnRowSums(g.act, y[off+i0:off+i1], dy[off+i0:off+i1], x[off+i0:off+i1], mu)
					sdz += float64(a)
					sdzx += float64(b)
				}
			}
			buf[2*c], buf[2*c+1] = sdz, sdzx
			dgamma[c], dbeta[c] = float32(sdzx)*invstd[c], float32(sdz)
		}
	})
	if err := sync.SumFloat64(sc.what[2], buf); err != nil {
		return err
	}
	M := sc.count
	parallelFor(C, func(_, lo, hi int) {
		for c := lo; c < hi; c++ {
			mu, is := mean[c], invstd[c]
			db := float32(buf[2*c])
			dg := float32(buf[2*c+1]) * is
			k := gamma[c] * is
			c0 := float32(float64(db) / M)
			c1 := float32(float64(dg) / M * float64(is))
			for n := 0; n < g.N; n++ {
				off := (n*g.C + c) * g.HW
				bnRowDx(g.act, y[off:off+g.HW], dy[off:off+g.HW], x[off:off+g.HW], dx[off:off+g.HW], mu, k, c0, c1)
			}
		}
	})
	return nil
}

// bnBackwardSyncBlk is bnBackwardSync in a blocked layout (bnGeom.blk).
func bnBackwardSyncBlk(g *bnGeom, sync BatchSync, sc *bnSyncScratch, buf []float64, x, y, gamma, mean, invstd, dy, dx, dgamma, dbeta []float32) error {
	parallelFor(g.C/g.blk, func(_, lo, hi int) {
		var sdz, sdzx [16]float64
		for b := lo; b < hi; b++ {
			clear(sdz[:])
			clear(sdzx[:])
			blkGradSums(g, y, dy, x, b, mean[b*g.blk:b*g.blk+g.blk], sdz[:g.blk], sdzx[:g.blk])
			for j := range g.blk {
				c := b*g.blk + j
				buf[2*c], buf[2*c+1] = sdz[j], sdzx[j]
				dgamma[c], dbeta[c] = float32(sdzx[j])*invstd[c], float32(sdz[j])
			}
		}
	})
	if err := sync.SumFloat64(sc.what[2], buf); err != nil {
		return err
	}
	M := sc.count
	parallelFor(g.C/g.blk, func(_, lo, hi int) {
		var dg, db [16]float32
		for b := lo; b < hi; b++ {
			for j := range g.blk {
				c := b*g.blk + j
				db[j] = float32(buf[2*c])
				dg[j] = float32(buf[2*c+1]) * invstd[c]
			}
			bnBlkDx(g, y, dy, x, dx, b, gamma, mean, invstd, dg[:g.blk], db[:g.blk], M)
		}
	})
	return nil
}

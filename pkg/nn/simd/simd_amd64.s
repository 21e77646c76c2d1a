//go:build amd64

#include "textflag.h"

// BCAST4 loads the float32 at src into every lane of reg.
#define BCAST4(src, reg) MOVSS src, reg; SHUFPS $0x00, reg, reg

// ONES4 sets every lane of reg to 1.0 (through DX).
#define ONES4(reg) MOVL $0x3f800000, DX; MOVL DX, reg; SHUFPS $0x00, reg, reg

// RELU_M turns y's bits in reg into the ReLU slope m: 1 where they are not
// all 0, else 0 (X13 holds zeros, X12 ones).
#define RELU_M(reg) PCMPEQL X13, reg; ANDNPS X12, reg

// LEAKY_M turns y's bits in reg into the leaky slope m: slope (X14) where
// the sign bit is set, else 1 (X12); X6 is scratch.
#define LEAKY_M(reg) PSRAL $31, reg; MOVAPS reg, X6; ANDPS X14, reg; ANDNPS X12, X6; ORPS X6, reg

// BN_DX_STEP writes four dx = k*(dy*m - c0 - (x-mu)*c1) from m in X5, dy at
// (BX), x at (SI) to (DI) (X8 mu, X9 k, X10 c0, X11 c1) and advances the
// pointers (y's in AX).
#define BN_DX_STEP \
	MOVUPS (BX), X0; MULPS X5, X0; SUBPS X10, X0; \
	MOVUPS (SI), X1; SUBPS X8, X1; MULPS X11, X1; \
	SUBPS X1, X0; MULPS X9, X0; MOVUPS X0, (DI); \
	ADDQ $16, AX; ADDQ $16, BX; ADDQ $16, SI; ADDQ $16, DI

// BN_SUMS_STEP adds, for a pair, d = dy*m (m in X5, dy at (BX)) to the
// lanes 0-1 of X2 and d*(x-mu) (x at (SI), X8 mu) to those of X3, and
// advances the pointers (y's in AX).
#define BN_SUMS_STEP \
	MOVSD (BX), X0; MULPS X5, X0; ADDPS X0, X2; \
	MOVSD (SI), X1; SUBPS X8, X1; MULPS X1, X0; ADDPS X0, X3; \
	ADDQ $8, AX; ADDQ $8, BX; ADDQ $8, SI

// SSE kernels over whole blocks of four floats (len &^ 3 elements; the Go
// callers finish the rest). Each lane does exactly the float32 operations,
// in the same order, as the Go loops they replace (pkg/nn), so results are
// the same bits with and without them.

// func Sum32x4(xs []float32) (s [4]float32)
TEXT ·Sum32x4(SB), NOSPLIT, $0-40
	MOVQ xs_base+0(FP), SI
	MOVQ xs_len+8(FP), CX
	SHRQ $2, CX
	XORPS X0, X0
	TESTQ CX, CX
	JZ sum_done
sum_loop:
	MOVUPS (SI), X1
	ADDPS X1, X0
	ADDQ $16, SI
	DECQ CX
	JNZ sum_loop
sum_done:
	MOVUPS X0, s+24(FP)
	RET

// func SqDev32x4(xs []float32, mu float32) (s [4]float32)
TEXT ·SqDev32x4(SB), NOSPLIT, $0-48
	MOVQ xs_base+0(FP), SI
	MOVQ xs_len+8(FP), CX
	SHRQ $2, CX
	BCAST4(mu+24(FP), X2)
	XORPS X0, X0
	TESTQ CX, CX
	JZ sq_done
sq_loop:
	MOVUPS (SI), X1
	SUBPS X2, X1
	MULPS X1, X1
	ADDPS X1, X0
	ADDQ $16, SI
	DECQ CX
	JNZ sq_loop
sq_done:
	MOVUPS X0, s+32(FP)
	RET

// func AffineAct4(x, y []float32, scale, shift, slope float32, relu bool)
// z = x*scale+shift; with relu y = max(z, 0) with Go's max (NaN stays NaN,
// -0 becomes +0), otherwise (leaky) y = max(z, slope*z).
TEXT ·AffineAct4(SB), NOSPLIT, $0-61
	MOVQ x_base+0(FP), SI
	MOVQ x_len+8(FP), CX
	MOVQ y_base+24(FP), DI
	SHRQ $2, CX
	BCAST4(scale+48(FP), X2)
	BCAST4(shift+52(FP), X3)
	BCAST4(slope+56(FP), X5)
	XORPS X4, X4
	TESTQ CX, CX
	JZ act_done
	MOVBLZX relu+60(FP), DX
	TESTL DX, DX
	JZ leaky_loop
relu_loop:
	MOVUPS (SI), X0
	MULPS X2, X0
	ADDPS X3, X0
	MOVAPS X0, X1
	CMPPS X4, X1, $6 // not (z <= 0): z > 0 or NaN
	ANDPS X1, X0
	MOVUPS X0, (DI)
	ADDQ $16, SI
	ADDQ $16, DI
	DECQ CX
	JNZ relu_loop
	RET
leaky_loop:
	MOVUPS (SI), X0
	MULPS X2, X0
	ADDPS X3, X0
	MOVAPS X5, X1
	MULPS X0, X1
	MAXPS X0, X1 // z and slope*z are equal (zeros) or both NaN only together
	MOVUPS X1, (DI)
	ADDQ $16, SI
	ADDQ $16, DI
	DECQ CX
	JNZ leaky_loop
act_done:
	RET

// func BnDx4(y, dy, x, dx []float32, mu, k, c0, c1, slope float32, relu bool)
// dx = k * (dy*m - c0 - (x-mu)*c1); m: with relu, 1 where y's bits are not
// 0, else 0; otherwise (leaky), slope where y's sign bit is set, else 1.
TEXT ·BnDx4(SB), NOSPLIT, $0-117
	MOVQ y_base+0(FP), AX
	MOVQ y_len+8(FP), CX
	MOVQ dy_base+24(FP), BX
	MOVQ x_base+48(FP), SI
	MOVQ dx_base+72(FP), DI
	SHRQ $2, CX
	BCAST4(mu+96(FP), X8)
	BCAST4(k+100(FP), X9)
	BCAST4(c0+104(FP), X10)
	BCAST4(c1+108(FP), X11)
	BCAST4(slope+112(FP), X14)
	ONES4(X12)
	PXOR X13, X13
	TESTQ CX, CX
	JZ dx_done
	MOVBLZX relu+116(FP), DX
	TESTL DX, DX
	JZ dxl_loop
dxr_loop:
	MOVUPS (AX), X5
	RELU_M(X5)
	BN_DX_STEP
	DECQ CX
	JNZ dxr_loop
	RET
dxl_loop:
	MOVUPS (AX), X5
	LEAKY_M(X5)
	BN_DX_STEP
	DECQ CX
	JNZ dxl_loop
dx_done:
	RET

// func BnSums2(y, dy, x []float32, mu, slope float32, relu bool) (s [4]float32)
// Over pairs (len &^ 1 elements): d = dy*m (m as in BnDx4); for the pair's
// element j, s[j] += d and s[2+j] += d*(x-mu).
TEXT ·BnSums2(SB), NOSPLIT, $0-104
	MOVQ y_base+0(FP), AX
	MOVQ y_len+8(FP), CX
	MOVQ dy_base+24(FP), BX
	MOVQ x_base+48(FP), SI
	SHRQ $1, CX
	BCAST4(mu+72(FP), X8)
	BCAST4(slope+76(FP), X14)
	ONES4(X12)
	PXOR X13, X13
	XORPS X2, X2
	XORPS X3, X3
	TESTQ CX, CX
	JZ sums_done
	MOVBLZX relu+80(FP), DX
	TESTL DX, DX
	JZ sl_loop
sr_loop:
	MOVSD (AX), X5
	RELU_M(X5)
	BN_SUMS_STEP
	DECQ CX
	JNZ sr_loop
	JMP sums_done
sl_loop:
	MOVSD (AX), X5
	LEAKY_M(X5)
	BN_SUMS_STEP
	DECQ CX
	JNZ sl_loop
sums_done:
	MOVLHPS X3, X2 // a0 a1 b0 b1
	MOVUPS X2, s+88(FP)
	RET

// Kernels over a BatchNorm block in oneDNN's nChw16c or nChw8c layout:
// element e of channel lane j of a group of four channels lies at
// x[e*stride/4 + j] (the caller passes the slice from the group's first
// lane; stride, in bytes, is 64 or 32). Lane j does exactly what the row
// kernels above (and the Go loops) do for one channel's row; act: 0 none
// (m = 1), 1 ReLU, 2 leaky.

// BLK_DX_STEP: BN_DX_STEP for one element of four lanes (m in X5; the
// next element R8 bytes on).
#define BLK_DX_STEP \
	MOVUPS (BX), X0; MULPS X5, X0; SUBPS X10, X0; \
	MOVUPS (SI), X1; SUBPS X8, X1; MULPS X11, X1; \
	SUBPS X1, X0; MULPS X9, X0; MOVUPS X0, (DI); \
	ADDQ R8, AX; ADDQ R8, BX; ADDQ R8, SI; ADDQ R8, DI

// BLK_SUMS_STEP(a, b): with m in X5, d = dy*m of the element at (BX) is
// added to a, d*(x-mu) (x at (SI), X8 mu) to b; the pointers advance by R8.
#define BLK_SUMS_STEP(a, b) \
	MOVUPS (BX), X4; MULPS X5, X4; ADDPS X4, a; \
	MOVUPS (SI), X7; SUBPS X8, X7; MULPS X7, X4; ADDPS X4, b; \
	ADDQ R8, AX; ADDQ R8, BX; ADDQ R8, SI

// func BlkSum4(x []float32, n, stride int) (s [16]float32)
// Over the first n&^3 elements: chain k (elements 4i+k) of lane j in s[4k+j].
TEXT ·BlkSum4(SB), NOSPLIT, $0-104
	MOVQ x_base+0(FP), SI
	MOVQ n+24(FP), CX
	MOVQ stride+32(FP), R8
	SHRQ $2, CX
	XORPS X0, X0
	XORPS X1, X1
	XORPS X2, X2
	XORPS X3, X3
	TESTQ CX, CX
	JZ bsum_done
bsum_loop:
	MOVUPS (SI), X4
	ADDPS X4, X0
	ADDQ R8, SI
	MOVUPS (SI), X5
	ADDPS X5, X1
	ADDQ R8, SI
	MOVUPS (SI), X6
	ADDPS X6, X2
	ADDQ R8, SI
	MOVUPS (SI), X7
	ADDPS X7, X3
	ADDQ R8, SI
	DECQ CX
	JNZ bsum_loop
bsum_done:
	LEAQ s+40(FP), DI
	MOVUPS X0, 0(DI)
	MOVUPS X1, 16(DI)
	MOVUPS X2, 32(DI)
	MOVUPS X3, 48(DI)
	RET

// BLK_SQ(reg): reg = (x-mu)^2 of the element at (SI), added to acc; SI advances.
#define BLK_SQ(reg, acc) MOVUPS (SI), reg; SUBPS X8, reg; MULPS reg, reg; ADDPS reg, acc; ADDQ R8, SI

// func BlkSqDev4(x []float32, n, stride int, mu [4]float32) (s [16]float32)
// As BlkSum4 for (x-mu)^2, mu per lane.
TEXT ·BlkSqDev4(SB), NOSPLIT, $0-120
	MOVQ x_base+0(FP), SI
	MOVQ n+24(FP), CX
	MOVQ stride+32(FP), R8
	SHRQ $2, CX
	MOVUPS mu+40(FP), X8
	XORPS X0, X0
	XORPS X1, X1
	XORPS X2, X2
	XORPS X3, X3
	TESTQ CX, CX
	JZ bsq_done
bsq_loop:
	BLK_SQ(X4, X0)
	BLK_SQ(X5, X1)
	BLK_SQ(X6, X2)
	BLK_SQ(X7, X3)
	DECQ CX
	JNZ bsq_loop
bsq_done:
	LEAQ s+56(FP), DI
	MOVUPS X0, 0(DI)
	MOVUPS X1, 16(DI)
	MOVUPS X2, 32(DI)
	MOVUPS X3, 48(DI)
	RET

// func BlkAffineAct4(x, y []float32, n, stride int, scale, shift [4]float32, slope float32, act int)
// All n elements: z = x*scale+shift (per lane); y = z (none), max(z, 0)
// (ReLU, Go's max) or max(z, slope*z) (leaky), as AffineAct4.
TEXT ·BlkAffineAct4(SB), NOSPLIT, $0-112
	MOVQ x_base+0(FP), SI
	MOVQ y_base+24(FP), DI
	MOVQ n+48(FP), CX
	MOVQ stride+56(FP), R8
	MOVUPS scale+64(FP), X2
	MOVUPS shift+80(FP), X3
	BCAST4(slope+96(FP), X5)
	MOVQ act+104(FP), DX
	XORPS X4, X4
	TESTQ CX, CX
	JZ baff_done
	CMPQ DX, $1
	JEQ baff_relu
	JGT baff_leaky
baff_none:
	MOVUPS (SI), X0
	MULPS X2, X0
	ADDPS X3, X0
	MOVUPS X0, (DI)
	ADDQ R8, SI
	ADDQ R8, DI
	DECQ CX
	JNZ baff_none
	RET
baff_relu:
	MOVUPS (SI), X0
	MULPS X2, X0
	ADDPS X3, X0
	MOVAPS X0, X1
	CMPPS X4, X1, $6
	ANDPS X1, X0
	MOVUPS X0, (DI)
	ADDQ R8, SI
	ADDQ R8, DI
	DECQ CX
	JNZ baff_relu
	RET
baff_leaky:
	MOVUPS (SI), X0
	MULPS X2, X0
	ADDPS X3, X0
	MOVAPS X5, X1
	MULPS X0, X1
	MAXPS X0, X1
	MOVUPS X1, (DI)
	ADDQ R8, SI
	ADDQ R8, DI
	DECQ CX
	JNZ baff_leaky
baff_done:
	RET

// func BlkBnDx4(y, dy, x, dx []float32, n, stride int, mu, k, c0, c1 [4]float32, slope float32, act int)
// All n elements: dx = k*(dy*m - c0 - (x-mu)*c1), per-lane mu, k, c0, c1.
TEXT ·BlkBnDx4(SB), NOSPLIT, $0-192
	MOVQ y_base+0(FP), AX
	MOVQ dy_base+24(FP), BX
	MOVQ x_base+48(FP), SI
	MOVQ dx_base+72(FP), DI
	MOVQ n+96(FP), CX
	MOVQ stride+104(FP), R8
	MOVUPS mu+112(FP), X8
	MOVUPS k+128(FP), X9
	MOVUPS c0+144(FP), X10
	MOVUPS c1+160(FP), X11
	BCAST4(slope+176(FP), X14)
	ONES4(X12) // through DX
	PXOR X13, X13
	MOVQ act+184(FP), DX
	TESTQ CX, CX
	JZ bdx_done
	CMPQ DX, $1
	JEQ bdx_relu
	JGT bdx_leaky
bdx_none:
	MOVAPS X12, X5
	BLK_DX_STEP
	DECQ CX
	JNZ bdx_none
	RET
bdx_relu:
	MOVUPS (AX), X5
	RELU_M(X5)
	BLK_DX_STEP
	DECQ CX
	JNZ bdx_relu
	RET
bdx_leaky:
	MOVUPS (AX), X5
	LEAKY_M(X5)
	BLK_DX_STEP
	DECQ CX
	JNZ bdx_leaky
bdx_done:
	RET

// func BlkBnSums2(y, dy, x []float32, n, stride int, mu [4]float32, slope float32, act int) (s [16]float32)
// Over the first n&^1 elements, d = dy*m: s[j] sums d over the even
// elements, s[4+j] over the odd ones, s[8+j] and s[12+j] d*(x-mu) alike.
TEXT ·BlkBnSums2(SB), NOSPLIT, $0-184
	MOVQ y_base+0(FP), AX
	MOVQ dy_base+24(FP), BX
	MOVQ x_base+48(FP), SI
	MOVQ n+72(FP), CX
	MOVQ stride+80(FP), R8
	SHRQ $1, CX
	MOVUPS mu+88(FP), X8
	BCAST4(slope+104(FP), X14)
	ONES4(X12)
	PXOR X13, X13
	MOVQ act+112(FP), DX
	XORPS X0, X0
	XORPS X1, X1
	XORPS X2, X2
	XORPS X3, X3
	TESTQ CX, CX
	JZ bsums_done
	CMPQ DX, $1
	JEQ bsums_relu
	JGT bsums_leaky
bsums_none:
	MOVAPS X12, X5
	BLK_SUMS_STEP(X0, X2)
	BLK_SUMS_STEP(X1, X3)
	DECQ CX
	JNZ bsums_none
	JMP bsums_done
bsums_relu:
	MOVUPS (AX), X5
	RELU_M(X5)
	BLK_SUMS_STEP(X0, X2)
	MOVUPS (AX), X5
	RELU_M(X5)
	BLK_SUMS_STEP(X1, X3)
	DECQ CX
	JNZ bsums_relu
	JMP bsums_done
bsums_leaky:
	MOVUPS (AX), X5
	LEAKY_M(X5)
	BLK_SUMS_STEP(X0, X2)
	MOVUPS (AX), X5
	LEAKY_M(X5)
	BLK_SUMS_STEP(X1, X3)
	DECQ CX
	JNZ bsums_leaky
bsums_done:
	LEAQ s+120(FP), DI
	MOVUPS X0, 0(DI)
	MOVUPS X1, 16(DI)
	MOVUPS X2, 32(DI)
	MOVUPS X3, 48(DI)
	RET

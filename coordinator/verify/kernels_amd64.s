//go:build amd64 && !purego

#include "textflag.h"

// AVX2 and FMA versions of the kernels in kernels.go (see there and
// kernels_amd64.go). Each converts four float32 at a time to float64
// (VCVTPS2PD) and accumulates in float64 with fused multiply-adds. The
// sums over one slice (sumAbs, sumSquares) keep four independent
// accumulators in the main loop (sixteen elements), then take groups of
// four, then single elements. Lengths are those of the first slice (for
// gemv, of out); the Go callers make the others long enough.

// HSUM leaves in the low lane of x (the X register of y) the sum of the
// four lanes of y, using t as scratch; it clears the upper half of y.
#define HSUM(y, x, t) \
	VEXTRACTF128 $1, y, t; \
	VADDPD       t, x, x;  \
	VPERMILPD    $1, x, t; \
	VADDSD       t, x, x

// RELU4 loads four float32 from m into x and replaces those not above
// zero (NaN included) with +0, as relu in kernels.go does; zero holds
// zeros.
#define RELU4(m, x, zero) \
	VMOVUPS m, x; \
	VMAXPS  zero, x, x

// ABSMASK sets every lane of y to 0x7fff…f, which clears a float64's sign.
#define ABSMASK(y) \
	VPCMPEQQ y, y, y; \
	VPSRLQ   $1, y, y

// REDUCE4 leaves in a the four sums of the lanes of a, b, c and d, in
// that order, using t as scratch.
#define REDUCE4(a, b, c, d, t) \
	VHADDPD    b, a, a;       \
	VHADDPD    d, c, c;       \
	VPERM2F128 $0x20, c, a, t; \
	VPERM2F128 $0x31, c, a, a; \
	VADDPD     t, a, a

// The gemv kernels take the rows of a (len(out) rows of cols float32,
// row-major) four at a time, converting each group of four columns once
// and sharing the loads of x between the rows, then the rows left over
// one at a time. While a block of four rows is summed, they prefetch the
// next block (the 16·cols bytes after it, one cache line per group of
// four columns, R15 walking over it): the hardware prefetchers follow
// four short row streams badly, and a result's tensors are usually not
// in cache when it is checked. They cover the first cols&^3 columns only: the Go
// caller adds the last few.

// func gemvAVX2(a []float32, cols int, x []float64, out []float64)
TEXT ·gemvAVX2(SB), NOSPLIT, $0-80
	MOVQ a_base+0(FP), SI
	MOVQ cols+24(FP), CX
	MOVQ x_base+32(FP), DI
	MOVQ out_base+56(FP), R8
	MOVQ out_len+64(FP), R10
	MOVQ CX, R11
	ANDQ $-4, R11

block:
	CMPQ   R10, $4
	JB     single
	LEAQ   (SI)(CX*4), DX
	LEAQ   (DX)(CX*4), R12
	LEAQ   (R12)(CX*4), R13
	LEAQ   (R13)(CX*4), R15
	VXORPD Y0, Y0, Y0
	VXORPD Y1, Y1, Y1
	VXORPD Y2, Y2, Y2
	VXORPD Y3, Y3, Y3
	XORQ   AX, AX
	CMPQ   AX, R11
	JAE    block_sum

block_loop:
	PREFETCHT0  (R15)
	ADDQ        $64, R15
	VMOVUPD     (DI)(AX*8), Y4
	VCVTPS2PD   (SI)(AX*4), Y5
	VCVTPS2PD   (DX)(AX*4), Y6
	VCVTPS2PD   (R12)(AX*4), Y7
	VCVTPS2PD   (R13)(AX*4), Y8
	VFMADD231PD Y4, Y5, Y0
	VFMADD231PD Y4, Y6, Y1
	VFMADD231PD Y4, Y7, Y2
	VFMADD231PD Y4, Y8, Y3
	ADDQ        $4, AX
	CMPQ        AX, R11
	JB          block_loop

block_sum:
	REDUCE4(Y0, Y1, Y2, Y3, Y4)
	VMOVUPD Y0, (R8)
	ADDQ    $32, R8
	LEAQ    (R13)(CX*4), SI
	SUBQ    $4, R10
	JMP     block

single:
	TESTQ  R10, R10
	JZ     done
	VXORPD Y0, Y0, Y0
	XORQ   AX, AX
	CMPQ   AX, R11
	JAE    single_sum

single_loop:
	VCVTPS2PD   (SI)(AX*4), Y5
	VFMADD231PD (DI)(AX*8), Y5, Y0
	ADDQ        $4, AX
	CMPQ        AX, R11
	JB          single_loop

single_sum:
	HSUM(Y0, X0, X1)
	VMOVSD X0, (R8)
	ADDQ   $8, R8
	LEAQ   (SI)(CX*4), SI
	DECQ   R10
	JMP    single

done:
	VZEROUPPER
	RET

// gemvAbsAVX2 and gemvReluAVX2 keep three sums per row (a·x, |a|·xa and
// a·a), twelve accumulators for a block of four rows: x stays in a
// register, xa is read from memory by the fused multiply-adds, and the
// outputs are stored by row index (R9) from their bases, which leaves
// the registers for the sums.

// func gemvAbsAVX2(a []float32, cols int, x, xa, out, outAbs, outSq []float64)
TEXT ·gemvAbsAVX2(SB), NOSPLIT, $0-152
	MOVQ a_base+0(FP), SI
	MOVQ cols+24(FP), CX
	MOVQ x_base+32(FP), DI
	MOVQ xa_base+56(FP), BX
	MOVQ out_len+88(FP), R10
	MOVQ CX, R11
	ANDQ $-4, R11
	XORQ R9, R9 // the row
	ABSMASK(Y15)

block:
	CMPQ   R10, $4
	JB     single
	LEAQ   (SI)(CX*4), DX
	LEAQ   (DX)(CX*4), R12
	LEAQ   (R12)(CX*4), R13
	LEAQ   (R13)(CX*4), R15
	VXORPD Y0, Y0, Y0
	VXORPD Y1, Y1, Y1
	VXORPD Y2, Y2, Y2
	VXORPD Y3, Y3, Y3
	VXORPD Y4, Y4, Y4
	VXORPD Y5, Y5, Y5
	VXORPD Y6, Y6, Y6
	VXORPD Y7, Y7, Y7
	VXORPD Y8, Y8, Y8
	VXORPD Y9, Y9, Y9
	VXORPD Y10, Y10, Y10
	VXORPD Y11, Y11, Y11
	XORQ   AX, AX
	CMPQ   AX, R11
	JAE    block_sum

block_loop:
	PREFETCHT0  (R15)
	ADDQ        $64, R15
	VMOVUPD     (DI)(AX*8), Y14
	VCVTPS2PD   (SI)(AX*4), Y12
	VFMADD231PD Y14, Y12, Y0
	VFMADD231PD Y12, Y12, Y8
	VANDPD      Y15, Y12, Y12
	VFMADD231PD (BX)(AX*8), Y12, Y4
	VCVTPS2PD   (DX)(AX*4), Y13
	VFMADD231PD Y14, Y13, Y1
	VFMADD231PD Y13, Y13, Y9
	VANDPD      Y15, Y13, Y13
	VFMADD231PD (BX)(AX*8), Y13, Y5
	VCVTPS2PD   (R12)(AX*4), Y12
	VFMADD231PD Y14, Y12, Y2
	VFMADD231PD Y12, Y12, Y10
	VANDPD      Y15, Y12, Y12
	VFMADD231PD (BX)(AX*8), Y12, Y6
	VCVTPS2PD   (R13)(AX*4), Y13
	VFMADD231PD Y14, Y13, Y3
	VFMADD231PD Y13, Y13, Y11
	VANDPD      Y15, Y13, Y13
	VFMADD231PD (BX)(AX*8), Y13, Y7
	ADDQ        $4, AX
	CMPQ        AX, R11
	JB          block_loop

block_sum:
	REDUCE4(Y0, Y1, Y2, Y3, Y12)
	REDUCE4(Y4, Y5, Y6, Y7, Y12)
	REDUCE4(Y8, Y9, Y10, Y11, Y12)
	MOVQ    out_base+80(FP), R8
	VMOVUPD Y0, (R8)(R9*8)
	MOVQ    outAbs_base+104(FP), R8
	VMOVUPD Y4, (R8)(R9*8)
	MOVQ    outSq_base+128(FP), R8
	VMOVUPD Y8, (R8)(R9*8)
	ADDQ    $4, R9
	LEAQ    (R13)(CX*4), SI
	SUBQ    $4, R10
	JMP     block

single:
	TESTQ  R10, R10
	JZ     done
	VXORPD Y0, Y0, Y0
	VXORPD Y4, Y4, Y4
	VXORPD Y8, Y8, Y8
	XORQ   AX, AX
	CMPQ   AX, R11
	JAE    single_sum

single_loop:
	VCVTPS2PD   (SI)(AX*4), Y10
	VFMADD231PD (DI)(AX*8), Y10, Y0
	VFMADD231PD Y10, Y10, Y8
	VANDPD      Y15, Y10, Y10
	VFMADD231PD (BX)(AX*8), Y10, Y4
	ADDQ        $4, AX
	CMPQ        AX, R11
	JB          single_loop

single_sum:
	HSUM(Y0, X0, X1)
	HSUM(Y4, X4, X5)
	HSUM(Y8, X8, X9)
	MOVQ   out_base+80(FP), R8
	VMOVSD X0, (R8)(R9*8)
	MOVQ   outAbs_base+104(FP), R8
	VMOVSD X4, (R8)(R9*8)
	MOVQ   outSq_base+128(FP), R8
	VMOVSD X8, (R8)(R9*8)
	INCQ   R9
	LEAQ   (SI)(CX*4), SI
	DECQ   R10
	JMP    single

done:
	VZEROUPPER
	RET

// func gemvReluAVX2(a []float32, cols int, x, xa, out, outAbs, outSq []float64)
TEXT ·gemvReluAVX2(SB), NOSPLIT, $0-152
	MOVQ   a_base+0(FP), SI
	MOVQ   cols+24(FP), CX
	MOVQ   x_base+32(FP), DI
	MOVQ   xa_base+56(FP), BX
	MOVQ   out_len+88(FP), R10
	MOVQ   CX, R11
	ANDQ   $-4, R11
	XORQ   R9, R9 // the row
	VXORPS Y14, Y14, Y14

block:
	CMPQ   R10, $4
	JB     single
	LEAQ   (SI)(CX*4), DX
	LEAQ   (DX)(CX*4), R12
	LEAQ   (R12)(CX*4), R13
	LEAQ   (R13)(CX*4), R15
	VXORPD Y0, Y0, Y0
	VXORPD Y1, Y1, Y1
	VXORPD Y2, Y2, Y2
	VXORPD Y3, Y3, Y3
	VXORPD Y4, Y4, Y4
	VXORPD Y5, Y5, Y5
	VXORPD Y6, Y6, Y6
	VXORPD Y7, Y7, Y7
	VXORPD Y8, Y8, Y8
	VXORPD Y9, Y9, Y9
	VXORPD Y10, Y10, Y10
	VXORPD Y11, Y11, Y11
	XORQ   AX, AX
	CMPQ   AX, R11
	JAE    block_sum

block_loop:
	PREFETCHT0  (R15)
	ADDQ        $64, R15
	VMOVUPD     (DI)(AX*8), Y13
	RELU4((SI)(AX*4), X12, X14)
	VCVTPS2PD   X12, Y12
	VFMADD231PD Y13, Y12, Y0
	VFMADD231PD (BX)(AX*8), Y12, Y4
	VFMADD231PD Y12, Y12, Y8
	RELU4((DX)(AX*4), X12, X14)
	VCVTPS2PD   X12, Y12
	VFMADD231PD Y13, Y12, Y1
	VFMADD231PD (BX)(AX*8), Y12, Y5
	VFMADD231PD Y12, Y12, Y9
	RELU4((R12)(AX*4), X12, X14)
	VCVTPS2PD   X12, Y12
	VFMADD231PD Y13, Y12, Y2
	VFMADD231PD (BX)(AX*8), Y12, Y6
	VFMADD231PD Y12, Y12, Y10
	RELU4((R13)(AX*4), X12, X14)
	VCVTPS2PD   X12, Y12
	VFMADD231PD Y13, Y12, Y3
	VFMADD231PD (BX)(AX*8), Y12, Y7
	VFMADD231PD Y12, Y12, Y11
	ADDQ        $4, AX
	CMPQ        AX, R11
	JB          block_loop

block_sum:
	REDUCE4(Y0, Y1, Y2, Y3, Y15)
	REDUCE4(Y4, Y5, Y6, Y7, Y15)
	REDUCE4(Y8, Y9, Y10, Y11, Y15)
	MOVQ    out_base+80(FP), R8
	VMOVUPD Y0, (R8)(R9*8)
	MOVQ    outAbs_base+104(FP), R8
	VMOVUPD Y4, (R8)(R9*8)
	MOVQ    outSq_base+128(FP), R8
	VMOVUPD Y8, (R8)(R9*8)
	ADDQ    $4, R9
	LEAQ    (R13)(CX*4), SI
	SUBQ    $4, R10
	JMP     block

single:
	TESTQ  R10, R10
	JZ     done
	VXORPD Y0, Y0, Y0
	VXORPD Y4, Y4, Y4
	VXORPD Y8, Y8, Y8
	XORQ   AX, AX
	CMPQ   AX, R11
	JAE    single_sum

single_loop:
	RELU4((SI)(AX*4), X10, X14)
	VCVTPS2PD   X10, Y10
	VFMADD231PD (DI)(AX*8), Y10, Y0
	VFMADD231PD (BX)(AX*8), Y10, Y4
	VFMADD231PD Y10, Y10, Y8
	ADDQ        $4, AX
	CMPQ        AX, R11
	JB          single_loop

single_sum:
	HSUM(Y0, X0, X1)
	HSUM(Y4, X4, X5)
	HSUM(Y8, X8, X9)
	MOVQ   out_base+80(FP), R8
	VMOVSD X0, (R8)(R9*8)
	MOVQ   outAbs_base+104(FP), R8
	VMOVSD X4, (R8)(R9*8)
	MOVQ   outSq_base+128(FP), R8
	VMOVSD X8, (R8)(R9*8)
	INCQ   R9
	LEAQ   (SI)(CX*4), SI
	DECQ   R10
	JMP    single

done:
	VZEROUPPER
	RET

// func sumAbsAVX2(x []float32) float64
TEXT ·sumAbsAVX2(SB), NOSPLIT, $0-32
	MOVQ   x_base+0(FP), SI
	MOVQ   x_len+8(FP), CX
	ABSMASK(Y15)
	VXORPD Y0, Y0, Y0
	VXORPD Y1, Y1, Y1
	VXORPD Y2, Y2, Y2
	VXORPD Y3, Y3, Y3
	XORQ   AX, AX
	MOVQ   CX, BX
	ANDQ   $-16, BX
	JZ     tail4

loop16:
	VCVTPS2PD (SI)(AX*4), Y4
	VCVTPS2PD 16(SI)(AX*4), Y5
	VCVTPS2PD 32(SI)(AX*4), Y6
	VCVTPS2PD 48(SI)(AX*4), Y7
	VANDPD    Y15, Y4, Y4
	VANDPD    Y15, Y5, Y5
	VANDPD    Y15, Y6, Y6
	VANDPD    Y15, Y7, Y7
	VADDPD    Y4, Y0, Y0
	VADDPD    Y5, Y1, Y1
	VADDPD    Y6, Y2, Y2
	VADDPD    Y7, Y3, Y3
	ADDQ      $16, AX
	CMPQ      AX, BX
	JB        loop16

tail4:
	MOVQ CX, BX
	ANDQ $-4, BX
	CMPQ AX, BX
	JAE  reduce

loop4:
	VCVTPS2PD (SI)(AX*4), Y4
	VANDPD    Y15, Y4, Y4
	VADDPD    Y4, Y0, Y0
	ADDQ      $4, AX
	CMPQ      AX, BX
	JB        loop4

reduce:
	VADDPD Y1, Y0, Y0
	VADDPD Y3, Y2, Y2
	VADDPD Y2, Y0, Y0
	HSUM(Y0, X0, X1)

tail1:
	CMPQ      AX, CX
	JAE       done
	VCVTSS2SD (SI)(AX*4), X1, X1
	VANDPD    X15, X1, X1
	VADDSD    X1, X0, X0
	INCQ      AX
	JMP       tail1

done:
	VZEROUPPER
	MOVSD X0, ret+24(FP)
	RET

// func sumSquaresAVX2(x []float32) float64
TEXT ·sumSquaresAVX2(SB), NOSPLIT, $0-32
	MOVQ   x_base+0(FP), SI
	MOVQ   x_len+8(FP), CX
	VXORPD Y0, Y0, Y0
	VXORPD Y1, Y1, Y1
	VXORPD Y2, Y2, Y2
	VXORPD Y3, Y3, Y3
	XORQ   AX, AX
	MOVQ   CX, BX
	ANDQ   $-16, BX
	JZ     tail4

loop16:
	VCVTPS2PD   (SI)(AX*4), Y4
	VCVTPS2PD   16(SI)(AX*4), Y5
	VCVTPS2PD   32(SI)(AX*4), Y6
	VCVTPS2PD   48(SI)(AX*4), Y7
	VFMADD231PD Y4, Y4, Y0
	VFMADD231PD Y5, Y5, Y1
	VFMADD231PD Y6, Y6, Y2
	VFMADD231PD Y7, Y7, Y3
	ADDQ        $16, AX
	CMPQ        AX, BX
	JB          loop16

tail4:
	MOVQ CX, BX
	ANDQ $-4, BX
	CMPQ AX, BX
	JAE  reduce

loop4:
	VCVTPS2PD   (SI)(AX*4), Y4
	VFMADD231PD Y4, Y4, Y0
	ADDQ        $4, AX
	CMPQ        AX, BX
	JB          loop4

reduce:
	VADDPD Y1, Y0, Y0
	VADDPD Y3, Y2, Y2
	VADDPD Y2, Y0, Y0
	HSUM(Y0, X0, X1)

tail1:
	CMPQ        AX, CX
	JAE         done
	VCVTSS2SD   (SI)(AX*4), X1, X1
	VFMADD231SD X1, X1, X0
	INCQ        AX
	JMP         tail1

done:
	VZEROUPPER
	MOVSD X0, ret+24(FP)
	RET

// func addSquaresAVX2(w []float64, x []float32)
// w_j += x_j², the square rounded before the sum (no FMA), as addSquare.
TEXT ·addSquaresAVX2(SB), NOSPLIT, $0-48
	MOVQ w_base+0(FP), DI
	MOVQ x_base+24(FP), SI
	MOVQ x_len+32(FP), CX
	XORQ AX, AX
	MOVQ CX, BX
	ANDQ $-16, BX
	JZ   tail4

loop16:
	VCVTPS2PD (SI)(AX*4), Y0
	VCVTPS2PD 16(SI)(AX*4), Y1
	VCVTPS2PD 32(SI)(AX*4), Y2
	VCVTPS2PD 48(SI)(AX*4), Y3
	VMULPD    Y0, Y0, Y0
	VMULPD    Y1, Y1, Y1
	VMULPD    Y2, Y2, Y2
	VMULPD    Y3, Y3, Y3
	VADDPD    (DI)(AX*8), Y0, Y0
	VADDPD    32(DI)(AX*8), Y1, Y1
	VADDPD    64(DI)(AX*8), Y2, Y2
	VADDPD    96(DI)(AX*8), Y3, Y3
	VMOVUPD   Y0, (DI)(AX*8)
	VMOVUPD   Y1, 32(DI)(AX*8)
	VMOVUPD   Y2, 64(DI)(AX*8)
	VMOVUPD   Y3, 96(DI)(AX*8)
	ADDQ      $16, AX
	CMPQ      AX, BX
	JB        loop16

tail4:
	MOVQ CX, BX
	ANDQ $-4, BX
	CMPQ AX, BX
	JAE  tail1

loop4:
	VCVTPS2PD (SI)(AX*4), Y0
	VMULPD    Y0, Y0, Y0
	VADDPD    (DI)(AX*8), Y0, Y0
	VMOVUPD   Y0, (DI)(AX*8)
	ADDQ      $4, AX
	CMPQ      AX, BX
	JB        loop4

tail1:
	CMPQ      AX, CX
	JAE       done
	VCVTSS2SD (SI)(AX*4), X0, X0
	VMULSD    X0, X0, X0
	VADDSD    (DI)(AX*8), X0, X0
	VMOVSD    X0, (DI)(AX*8)
	INCQ      AX
	JMP       tail1

done:
	VZEROUPPER
	RET

// NORMS adds relu(a)², relu(b)² and (relu(a) − relu(b))² lanewise to
// sa, sb and sd, clobbering a and b; zero holds zeros. relu is as in
// RELU4.
#define NORMS(a, b, zero, sa, sb, sd) \
	VMAXPD      zero, a, a; \
	VMAXPD      zero, b, b; \
	VFMADD231PD a, a, sa;   \
	VFMADD231PD b, b, sb;   \
	VSUBPD      b, a, a;    \
	VFMADD231PD a, a, sd

// AGREE4 sets the lanes of mask, for the four elements at index AX, to
// all ones where !(|a − b| ≤ worst·tol), tol rounded as agreeTol, and
// leaves a and b converted to float64 in ya and yb. It expects a in SI,
// b in DI, colConst in R8, w in R9, rowConst in Y13, rowFactor in Y14,
// worst in Y12 and ABSMASK in Y15, and clobbers t and u.
#define AGREE4(off8, off4, ya, yb, t, u, mask) \
	VCVTPS2PD off4(SI)(AX*4), ya;       \
	VCVTPS2PD off4(DI)(AX*4), yb;       \
	VSUBPD    yb, ya, t;                \
	VANDPD    Y15, t, t;                \
	VMULPD    off8(R9)(AX*8), Y14, u;   \
	VADDPD    off8(R8)(AX*8), Y13, mask; \
	VADDPD    u, mask, mask;            \
	VMULPD    Y12, mask, mask;          \
	VCMPPD    $0x16, mask, t, mask

// func agreeRowNormsAVX2(a, b []float32, colConst, w []float64, rowConst, rowFactor, worst float64, check int, sums *[3]float64) int
// It adds Σ relu(a)², Σ relu(b)² and Σ (relu(a) − relu(b))² over the
// first len(a)&^3 elements to sums, and when check is not 0 returns the
// first of them at which !(|a − b| ≤ worst·tol) (as agreeRowAVX2), or
// len(a)&^3 when there is none. The sums go through the same steps
// whether it checks or not: two sets of accumulators, for even and odd
// groups of four.
TEXT ·agreeRowNormsAVX2(SB), NOSPLIT, $0-144
	MOVQ         a_base+0(FP), SI
	MOVQ         a_len+8(FP), CX
	MOVQ         b_base+24(FP), DI
	MOVQ         colConst_base+48(FP), R8
	MOVQ         w_base+72(FP), R9
	VBROADCASTSD rowConst+96(FP), Y13
	VBROADCASTSD rowFactor+104(FP), Y14
	VBROADCASTSD worst+112(FP), Y12
	ABSMASK(Y15)
	VXORPD       Y10, Y10, Y10
	VXORPD       Y5, Y5, Y5
	VXORPD       Y6, Y6, Y6
	VXORPD       Y7, Y7, Y7
	VXORPD       Y8, Y8, Y8
	VXORPD       Y9, Y9, Y9
	VXORPD       Y11, Y11, Y11
	ANDQ         $-4, CX
	MOVQ         CX, R10        // the first element out of tolerance: none yet
	MOVQ         CX, R11
	ANDQ         $-8, R11
	XORQ         AX, AX
	MOVQ         check+120(FP), DX
	TESTQ        DX, DX
	JZ           norms8

check8:
	CMPQ  AX, R11
	JAE   check4
	AGREE4(0, 0, Y0, Y1, Y2, Y3, Y4)
	VMOVMSKPD Y4, DX
	NORMS(Y0, Y1, Y10, Y5, Y6, Y7)
	TESTL DX, DX
	JZ    check8b
	CMPQ  R10, CX
	JNE   check8b
	BSFL  DX, DX
	LEAQ  (AX)(DX*1), R10

check8b:
	AGREE4(32, 16, Y0, Y1, Y2, Y3, Y4)
	VMOVMSKPD Y4, DX
	NORMS(Y0, Y1, Y10, Y8, Y9, Y11)
	ADDQ  $8, AX
	TESTL DX, DX
	JZ    check8
	CMPQ  R10, CX
	JNE   check8
	BSFL  DX, DX
	LEAQ  -4(AX)(DX*1), R10
	JMP   check8

check4:
	CMPQ  AX, CX
	JAE   reduce
	AGREE4(0, 0, Y0, Y1, Y2, Y3, Y4)
	VMOVMSKPD Y4, DX
	NORMS(Y0, Y1, Y10, Y5, Y6, Y7)
	TESTL DX, DX
	JZ    reduce
	CMPQ  R10, CX
	JNE   reduce
	BSFL  DX, DX
	LEAQ  (AX)(DX*1), R10
	JMP   reduce

norms8:
	CMPQ      AX, R11
	JAE       norms4
	VCVTPS2PD (SI)(AX*4), Y0
	VCVTPS2PD (DI)(AX*4), Y1
	NORMS(Y0, Y1, Y10, Y5, Y6, Y7)
	VCVTPS2PD 16(SI)(AX*4), Y0
	VCVTPS2PD 16(DI)(AX*4), Y1
	NORMS(Y0, Y1, Y10, Y8, Y9, Y11)
	ADDQ      $8, AX
	JMP       norms8

norms4:
	CMPQ      AX, CX
	JAE       reduce
	VCVTPS2PD (SI)(AX*4), Y0
	VCVTPS2PD (DI)(AX*4), Y1
	NORMS(Y0, Y1, Y10, Y5, Y6, Y7)

reduce:
	VADDPD Y8, Y5, Y5
	VADDPD Y9, Y6, Y6
	VADDPD Y11, Y7, Y7
	HSUM(Y5, X5, X0)
	HSUM(Y6, X6, X0)
	HSUM(Y7, X7, X0)
	MOVQ   sums+128(FP), DX
	VADDSD (DX), X5, X5
	VADDSD 8(DX), X6, X6
	VADDSD 16(DX), X7, X7
	VMOVSD X5, (DX)
	VMOVSD X6, 8(DX)
	VMOVSD X7, 16(DX)
	VZEROUPPER
	MOVQ   R10, ret+136(FP)
	RET

// func agreeRowAVX2(a, b []float32, colConst, w []float64, rowConst, rowFactor, worst float64) int
// It looks at the first len(a)&^3 elements only and returns that count
// when none of them is out of tolerance; tol is rounded as agreeTol.
TEXT ·agreeRowAVX2(SB), NOSPLIT, $0-128
	MOVQ         a_base+0(FP), SI
	MOVQ         a_len+8(FP), CX
	MOVQ         b_base+24(FP), DI
	MOVQ         colConst_base+48(FP), R8
	MOVQ         w_base+72(FP), R9
	VBROADCASTSD rowConst+96(FP), Y13
	VBROADCASTSD rowFactor+104(FP), Y14
	VBROADCASTSD worst+112(FP), Y12
	ABSMASK(Y15)
	XORQ         AX, AX
	ANDQ         $-4, CX
	JZ           none

loop4:
	VCVTPS2PD  (SI)(AX*4), Y0
	VCVTPS2PD  (DI)(AX*4), Y1
	VSUBPD     Y1, Y0, Y0
	VANDPD     Y15, Y0, Y0        // d = |a − b|
	VMULPD     (R9)(AX*8), Y14, Y2 // rowFactor·w
	VADDPD     (R8)(AX*8), Y13, Y3 // rowConst + colConst
	VADDPD     Y2, Y3, Y3         // tol
	VMULPD     Y12, Y3, Y3        // worst·tol
	VCMPPD     $0x16, Y3, Y0, Y4  // NLE_UQ: !(d <= worst·tol), NaN included
	VMOVMSKPD  Y4, DX
	TESTL      DX, DX
	JNZ        found
	ADDQ       $4, AX
	CMPQ       AX, CX
	JB         loop4

none:
	VZEROUPPER
	MOVQ CX, ret+120(FP)
	RET

found:
	BSFL DX, DX
	ADDQ DX, AX
	VZEROUPPER
	MOVQ AX, ret+120(FP)
	RET

// gemv4AVX2 is gemvAVX2's block path for four vectors at once: it takes
// the rows of a two at a time (rows must be a multiple of four), converts
// each group of four columns of both rows once and multiplies them by
// the four vectors into eight accumulators, then reduces each as
// gemvAVX2 reduces a block's rows (REDUCE4), so that every sum has the
// bits gemvAVX2 gives it. It covers the first cols&^3 columns only.

// func gemv4AVX2(a []float32, cols int, x0, x1, x2, x3, out0, out1, out2, out3 []float64, rows int)
TEXT ·gemv4AVX2(SB), NOSPLIT, $0-232
	MOVQ a_base+0(FP), SI
	MOVQ cols+24(FP), CX
	MOVQ x0_base+32(FP), DI
	MOVQ x1_base+56(FP), BX
	MOVQ x2_base+80(FP), R12
	MOVQ x3_base+104(FP), R13
	MOVQ rows+224(FP), R10
	MOVQ CX, R11
	ANDQ $-4, R11
	XORQ R9, R9 // the row

pair:
	CMPQ   R9, R10
	JAE    pair_done
	LEAQ   (SI)(CX*4), DX
	VXORPD Y0, Y0, Y0
	VXORPD Y1, Y1, Y1
	VXORPD Y2, Y2, Y2
	VXORPD Y3, Y3, Y3
	VXORPD Y4, Y4, Y4
	VXORPD Y5, Y5, Y5
	VXORPD Y6, Y6, Y6
	VXORPD Y7, Y7, Y7
	XORQ   AX, AX
	CMPQ   AX, R11
	JAE    pair_sum

pair_loop:
	VCVTPS2PD   (SI)(AX*4), Y8
	VCVTPS2PD   (DX)(AX*4), Y9
	VMOVUPD     (DI)(AX*8), Y10
	VFMADD231PD Y10, Y8, Y0
	VFMADD231PD Y10, Y9, Y1
	VMOVUPD     (BX)(AX*8), Y10
	VFMADD231PD Y10, Y8, Y2
	VFMADD231PD Y10, Y9, Y3
	VMOVUPD     (R12)(AX*8), Y10
	VFMADD231PD Y10, Y8, Y4
	VFMADD231PD Y10, Y9, Y5
	VMOVUPD     (R13)(AX*8), Y10
	VFMADD231PD Y10, Y8, Y6
	VFMADD231PD Y10, Y9, Y7
	ADDQ        $4, AX
	CMPQ        AX, R11
	JB          pair_loop

pair_sum:
	// Y0 = (out0_i, out0_i+1, out1_i, out1_i+1), Y4 the same for out2
	// and out3.
	REDUCE4(Y0, Y1, Y2, Y3, Y11)
	REDUCE4(Y4, Y5, Y6, Y7, Y11)
	MOVQ         out0_base+128(FP), R15
	VMOVUPD      X0, (R15)(R9*8)
	VEXTRACTF128 $1, Y0, X0
	MOVQ         out1_base+152(FP), R15
	VMOVUPD      X0, (R15)(R9*8)
	MOVQ         out2_base+176(FP), R15
	VMOVUPD      X4, (R15)(R9*8)
	VEXTRACTF128 $1, Y4, X4
	MOVQ         out3_base+200(FP), R15
	VMOVUPD      X4, (R15)(R9*8)
	ADDQ         $2, R9
	LEAQ         (DX)(CX*4), SI
	JMP          pair

pair_done:
	VZEROUPPER
	RET

// gemm.c: the WASM SIMD CPU kernel of Neurolov's browser client.
//
// One operation, fused for inference: C = A·B + bias (A m×k row-major, B
// packed into panels of 8 columns, bias padded to a multiple of 8), and
// optionally H = relu(C) written beside it, so that an MLP layer stores its
// pre-activation Z_l (the shard's output) and the next layer's input
// H_l = relu(Z_l) in one pass.
//
// Build (Debian's clang and lld; there is no libc):
//
//   clang --target=wasm32 -O3 -msimd128 -nostdlib -Wl,--no-entry \
//         -Wl,--export-dynamic -o gemm.wasm gemm.c
//
// The module exports its memory ("memory") and the functions below. Every
// pointer is a byte offset into that memory; the Go client (package
// wasm/simdgemm) owns the allocation of everything above nl_heap_base() and
// grows the memory itself.
//
// The micro-kernel computes a 4×8 block of C in eight f32x4 accumulators
// (V8 keeps about 15 SIMD registers live: wider blocks spill), loads the
// bias into them before the first product, and adds the products for
// p = 0, 1, …, k-1 in order, each product rounded before it is added (WASM
// SIMD has no fused multiply-add): the same order and roundings as the Go
// reference, shaders.MatMulBiasReLUIn.

#include <wasm_simd128.h>

typedef unsigned long size_t;

// clang may emit calls to these for struct copies and zeroing; there is no
// libc, so define them, and keep clang from turning their loops back into
// calls to themselves.
__attribute__((no_builtin("memcpy"))) void *memcpy(void *dst, const void *src, size_t n) {
  unsigned char *d = dst;
  const unsigned char *s = src;
  while (n--) *d++ = *s++;
  return dst;
}

__attribute__((no_builtin("memset"))) void *memset(void *dst, int c, size_t n) {
  unsigned char *d = dst;
  while (n--) *d++ = (unsigned char)c;
  return dst;
}

#define EXPORT(name) __attribute__((export_name(#name), visibility("default")))

// NR is the panel width: columns of B per packed panel.
#define NR 8
// MR is the rows of C per micro-kernel call.
#define MR 4
// MC is the rows of A kept hot (in L1/L2) while every panel of B passes
// over them.
#define MC 64

extern unsigned char __heap_base;

// nl_heap_base returns the first byte the Go client may allocate.
EXPORT(nl_heap_base) size_t nl_heap_base(void) { return (size_t)&__heap_base; }

// nl_abi returns the version of this interface; the Go client refuses a
// module of another version.
EXPORT(nl_abi) int nl_abi(void) { return 1; }

// nl_packed_len returns the floats nl_pack_b writes for a k×n matrix.
EXPORT(nl_packed_len) int nl_packed_len(int k, int n) { return ((n + NR - 1) / NR) * NR * k; }

// nl_pack_b packs row-major B (k×n) into panels of NR columns: panel j holds
// columns [NR·j, NR·j+NR) as k rows of NR floats, zero-padded past n.
EXPORT(nl_pack_b) void nl_pack_b(const float *b, int k, int n, float *dst) {
  for (int j0 = 0; j0 < n; j0 += NR) {
    int w = n - j0 < NR ? n - j0 : NR;
    for (int p = 0; p < k; p++) {
      const float *src = b + (size_t)p * n + j0;
      if (w == NR) {
        wasm_v128_store(dst, wasm_v128_load(src));
        wasm_v128_store(dst + 4, wasm_v128_load(src + 4));
      } else {
        for (int j = 0; j < NR; j++) dst[j] = j < w ? src[j] : 0.0f;
      }
      dst += NR;
    }
  }
}

// store8 writes an 8-wide row of results, w of them valid, to c and, when
// h is not null, their relu to h.
static inline void store8(float *c, float *h, v128_t lo, v128_t hi, int w) {
  if (w == NR) {
    wasm_v128_store(c, lo);
    wasm_v128_store(c + 4, hi);
    if (h) {
      v128_t z = wasm_f32x4_splat(0.0f);
      wasm_v128_store(h, wasm_f32x4_max(lo, z));
      wasm_v128_store(h + 4, wasm_f32x4_max(hi, z));
    }
    return;
  }
  float t[NR];
  wasm_v128_store(t, lo);
  wasm_v128_store(t + 4, hi);
  for (int j = 0; j < w; j++) {
    c[j] = t[j];
    // max(NaN, 0) is NaN, as the Go reference's max.
    if (h) h[j] = t[j] != t[j] ? t[j] : (t[j] > 0.0f ? t[j] : 0.0f);
  }
}

// kernel4 computes rows [0, 4) of one 8-column block: c = a·bp + bias.
static void kernel4(int k, const float *a, int lda, const float *bp, const float *bias, float *c,
                    float *h, int ldc, int w) {
  v128_t b0 = wasm_v128_load(bias), b1 = wasm_v128_load(bias + 4);
  v128_t c00 = b0, c01 = b1, c10 = b0, c11 = b1, c20 = b0, c21 = b1, c30 = b0, c31 = b1;
  const float *a0 = a, *a1 = a + lda, *a2 = a + 2 * lda, *a3 = a + 3 * lda;
  for (int p = 0; p < k; p++) {
    v128_t x0 = wasm_v128_load(bp), x1 = wasm_v128_load(bp + 4);
    bp += NR;
    v128_t s;
    s = wasm_f32x4_splat(a0[p]);
    c00 = wasm_f32x4_add(c00, wasm_f32x4_mul(s, x0));
    c01 = wasm_f32x4_add(c01, wasm_f32x4_mul(s, x1));
    s = wasm_f32x4_splat(a1[p]);
    c10 = wasm_f32x4_add(c10, wasm_f32x4_mul(s, x0));
    c11 = wasm_f32x4_add(c11, wasm_f32x4_mul(s, x1));
    s = wasm_f32x4_splat(a2[p]);
    c20 = wasm_f32x4_add(c20, wasm_f32x4_mul(s, x0));
    c21 = wasm_f32x4_add(c21, wasm_f32x4_mul(s, x1));
    s = wasm_f32x4_splat(a3[p]);
    c30 = wasm_f32x4_add(c30, wasm_f32x4_mul(s, x0));
    c31 = wasm_f32x4_add(c31, wasm_f32x4_mul(s, x1));
  }
  store8(c, h, c00, c01, w);
  store8(c + ldc, h ? h + ldc : h, c10, c11, w);
  store8(c + 2 * ldc, h ? h + 2 * ldc : h, c20, c21, w);
  store8(c + 3 * ldc, h ? h + 3 * ldc : h, c30, c31, w);
}

// kernel1 computes one row of one 8-column block (the rows left over when
// m is not a multiple of 4).
static void kernel1(int k, const float *a, const float *bp, const float *bias, float *c, float *h,
                    int w) {
  v128_t c0 = wasm_v128_load(bias), c1 = wasm_v128_load(bias + 4);
  for (int p = 0; p < k; p++) {
    v128_t s = wasm_f32x4_splat(a[p]);
    c0 = wasm_f32x4_add(c0, wasm_f32x4_mul(s, wasm_v128_load(bp)));
    c1 = wasm_f32x4_add(c1, wasm_f32x4_mul(s, wasm_v128_load(bp + 4)));
    bp += NR;
  }
  store8(c, h, c0, c1, w);
}

static const float zeros[NR] __attribute__((aligned(16)));

// nl_gemm computes C = A·B + bias for A (m×k, row stride lda), B packed by
// nl_pack_b from a k×n matrix, bias (n floats padded with zeros to a
// multiple of 8, or null for none) and C (m×n, row stride ldc). When h is
// not null it also writes H = relu(C) (m×n, row stride ldc). C and H must
// not overlap A.
EXPORT(nl_gemm)
void nl_gemm(const float *a, int lda, const float *bp, const float *bias, float *c, float *h, int ldc,
             int m, int k, int n) {
  int panels = (n + NR - 1) / NR;
  for (int i0 = 0; i0 < m; i0 += MC) {
    int i1 = m - i0 < MC ? m : i0 + MC;
    for (int jp = 0; jp < panels; jp++) {
      int j0 = jp * NR;
      int w = n - j0 < NR ? n - j0 : NR;
      const float *panel = bp + (size_t)jp * NR * k;
      const float *bb = bias ? bias + j0 : zeros;
      int i = i0;
      for (; i + MR <= i1; i += MR) {
        size_t off = (size_t)i * ldc + j0;
        kernel4(k, a + (size_t)i * lda, lda, panel, bb, c + off, h ? h + off : h, ldc, w);
      }
      for (; i < i1; i++) {
        size_t off = (size_t)i * ldc + j0;
        kernel1(k, a + (size_t)i * lda, panel, bb, c + off, h ? h + off : h, w);
      }
    }
  }
}

// requires: common params
//
// matmul_tile: the same product as matmul_reg, workgroup-tiled. A
// workgroup of WG_X×WG_Y invocations computes a BM×BN tile of C (BM =
// WG_Y·TM, BN = WG_X·TN), staging BK-deep slices of A and B in workgroup
// memory between barriers; each invocation accumulates TM×TN outputs in
// registers, strided by the workgroup size so that reads of workgroup
// memory and writes of C are contiguous across invocations. Real GPUs
// reward this; software GPUs punish the barriers. Tiles are padded by one
// float against bank conflicts. Loads follow the contiguous dimension of
// each operand (transposed or not) so they coalesce.

const WG_X: u32 = 16u;
const WG_Y: u32 = 16u;
const TM: u32 = 4u;
const TN: u32 = 4u;
const BK: u32 = 16u;

const BM: u32 = WG_Y * TM;
const BN: u32 = WG_X * TN;
const NT: u32 = WG_X * WG_Y;
const AS: u32 = BM + 1u;
const BS: u32 = BN + 1u;
// Workgroup array lengths BK·AS and BK·BS, spelled out because naga takes
// only a literal or a constant's name as an array size; shaders/gpu sets
// them with the other constants (and a test checks they agree).
const TA_LEN: u32 = 1040u;
const TB_LEN: u32 = 1040u;

@group(0) @binding(0) var<uniform> p: MatMulParams;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

var<workgroup> ta: array<f32, TA_LEN>;
var<workgroup> tb: array<f32, TB_LEN>;

@compute @workgroup_size(WG_X, WG_Y, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let tileRow = p.row0 + wid.y * BM;
  let tileCol = wid.x * BN;
  let iend = p.row0 + p.rows;
  let lo = select(neg_inf(), 0.0, p.reluIn != 0u);
  var acc: array<array<f32, TN>, TM>;
  for (var k0 = 0u; k0 < p.k; k0 += BK) {
    for (var e = li; e < BM * BK; e += NT) {
      var ii = e % BM;
      var kk = e / BM;
      if (p.aColStride == 1u) {
        ii = e / BK;
        kk = e % BK;
      }
      let gi = tileRow + ii;
      let gk = k0 + kk;
      var v = 0.0;
      if (gi < iend && gk < p.k) {
        v = max(a[gi * p.aRowStride + gk * p.aColStride], lo);
      }
      ta[kk * AS + ii] = v;
    }
    for (var e = li; e < BN * BK; e += NT) {
      var jj = e / BK;
      var kk = e % BK;
      if (p.bColStride == 1u) {
        jj = e % BN;
        kk = e / BN;
      }
      let gj = tileCol + jj;
      let gk = k0 + kk;
      var v = 0.0;
      if (gj < p.n && gk < p.k) {
        v = b[gk * p.bRowStride + gj * p.bColStride];
      }
      tb[kk * BS + jj] = v;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
      var ar: array<f32, TM>;
      var br: array<f32, TN>;
      for (var i = 0u; i < TM; i++) {
        ar[i] = ta[kk * AS + lid.y + i * WG_Y];
      }
      for (var j = 0u; j < TN; j++) {
        br[j] = tb[kk * BS + lid.x + j * WG_X];
      }
      for (var i = 0u; i < TM; i++) {
        for (var j = 0u; j < TN; j++) {
          acc[i][j] = fma(ar[i], br[j], acc[i][j]);
        }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < TM; i++) {
    let gi = tileRow + lid.y + i * WG_Y;
    if (gi < iend) {
      for (var j = 0u; j < TN; j++) {
        let gj = tileCol + lid.x + j * WG_X;
        if (gj < p.n) {
          var v = acc[i][j];
          if (p.hasBias != 0u) {
            v = v + bias[gj];
          }
          c[gi * p.n + gj] = activate(v, p.act);
        }
      }
    }
  }
}

// requires: common params
//
// matmul_reg: C = act(f(op(A))·op(B) + bias), register-blocked. Each
// invocation computes a 4×4 block of C in four vec4 accumulators, with no
// workgroup memory and no barriers: the fastest form on software GPUs
// (lavapipe, SwiftShader). Transposes are strides: A[i,p] is
// a[i*aRowStride + p*aColStride], B[p,j] is b[p*bRowStride + j*bColStride].
// f is ReLU when reluIn is set. The dispatch covers rows [row0, row0+rows)
// of C (a band: big products are split into several submissions).
// Loads clamp their indices into range, so the inner loop has no branches;
// only the stores are guarded.

const WG_X: u32 = 8u;
const WG_Y: u32 = 8u;

@group(0) @binding(0) var<uniform> p: MatMulParams;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

@compute @workgroup_size(WG_X, WG_Y, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let j0 = gid.x * 4u;
  let i0 = p.row0 + gid.y * 4u;
  let iend = p.row0 + p.rows;
  if (j0 >= p.n || i0 >= iend) {
    return;
  }
  let il = iend - 1u;
  let jl = p.n - 1u;
  let rows = vec4<u32>(min(i0, il), min(i0 + 1u, il), min(i0 + 2u, il), min(i0 + 3u, il));
  let cols = vec4<u32>(min(j0, jl), min(j0 + 1u, jl), min(j0 + 2u, jl), min(j0 + 3u, jl));
  let ao = rows * p.aRowStride;
  let bo = cols * p.bColStride;
  let lo = vec4<f32>(select(neg_inf(), 0.0, p.reluIn != 0u));
  var c0 = vec4<f32>(0.0);
  var c1 = vec4<f32>(0.0);
  var c2 = vec4<f32>(0.0);
  var c3 = vec4<f32>(0.0);
  for (var q = 0u; q < p.k; q++) {
    let ak = q * p.aColStride;
    let bk = q * p.bRowStride;
    let av = max(vec4<f32>(a[ao.x + ak], a[ao.y + ak], a[ao.z + ak], a[ao.w + ak]), lo);
    let bv = vec4<f32>(b[bk + bo.x], b[bk + bo.y], b[bk + bo.z], b[bk + bo.w]);
    c0 = fma(vec4<f32>(av.x), bv, c0);
    c1 = fma(vec4<f32>(av.y), bv, c1);
    c2 = fma(vec4<f32>(av.z), bv, c2);
    c3 = fma(vec4<f32>(av.w), bv, c3);
  }
  var bb = vec4<f32>(0.0);
  if (p.hasBias != 0u) {
    bb = vec4<f32>(bias[cols.x], bias[cols.y], bias[cols.z], bias[cols.w]);
  }
  var acc = array<vec4<f32>, 4>(c0 + bb, c1 + bb, c2 + bb, c3 + bb);
  for (var r = 0u; r < 4u; r++) {
    let i = i0 + r;
    if (i < iend) {
      let v = acc[r];
      let base = i * p.n;
      for (var t = 0u; t < 4u; t++) {
        if (j0 + t < p.n) {
          c[base + j0 + t] = activate(v[t], p.act);
        }
      }
    }
  }
}

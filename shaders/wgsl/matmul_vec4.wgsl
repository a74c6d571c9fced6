// requires: common params
//
// matmul_vec4: matmul_reg for the common aligned case — op(A) = A and
// op(B) = B untransposed, k and n multiples of 4 — reading A, B and writing C
// as vec4: each invocation still computes a 4×4 block of C, but one step
// of its loop loads four vec4 of A (4 rows × 4 of k) and four of B (4 of k
// × 4 columns) for 64 multiply-adds, a quarter of matmul_reg's loads. No
// workgroup memory, no barriers. shaders/gpu uses it in place of
// matmul_reg whenever the shapes allow.

const WG_X: u32 = 8u;
const WG_Y: u32 = 8u;

@group(0) @binding(0) var<uniform> p: MatMulParams;
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> c: array<vec4<f32>>;

@compute @workgroup_size(WG_X, WG_Y, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let n4 = p.n / 4u;
  let k4 = p.k / 4u;
  let jv = gid.x;
  let i0 = p.row0 + gid.y * 4u;
  let iend = p.row0 + p.rows;
  if (jv >= n4 || i0 >= iend) {
    return;
  }
  let il = iend - 1u;
  let r0 = min(i0, il) * k4;
  let r1 = min(i0 + 1u, il) * k4;
  let r2 = min(i0 + 2u, il) * k4;
  let r3 = min(i0 + 3u, il) * k4;
  let lo = vec4<f32>(select(neg_inf(), 0.0, p.reluIn != 0u));
  var c0 = vec4<f32>(0.0);
  var c1 = vec4<f32>(0.0);
  var c2 = vec4<f32>(0.0);
  var c3 = vec4<f32>(0.0);
  for (var q = 0u; q < k4; q++) {
    let bq = q * 4u * n4 + jv;
    let b0 = b[bq];
    let b1 = b[bq + n4];
    let b2 = b[bq + 2u * n4];
    let b3 = b[bq + 3u * n4];
    let a0 = max(a[r0 + q], lo);
    let a1 = max(a[r1 + q], lo);
    let a2 = max(a[r2 + q], lo);
    let a3 = max(a[r3 + q], lo);
    c0 = fma(vec4<f32>(a0.w), b3, fma(vec4<f32>(a0.z), b2, fma(vec4<f32>(a0.y), b1, fma(vec4<f32>(a0.x), b0, c0))));
    c1 = fma(vec4<f32>(a1.w), b3, fma(vec4<f32>(a1.z), b2, fma(vec4<f32>(a1.y), b1, fma(vec4<f32>(a1.x), b0, c1))));
    c2 = fma(vec4<f32>(a2.w), b3, fma(vec4<f32>(a2.z), b2, fma(vec4<f32>(a2.y), b1, fma(vec4<f32>(a2.x), b0, c2))));
    c3 = fma(vec4<f32>(a3.w), b3, fma(vec4<f32>(a3.z), b2, fma(vec4<f32>(a3.y), b1, fma(vec4<f32>(a3.x), b0, c3))));
  }
  var bb = vec4<f32>(0.0);
  if (p.hasBias != 0u) {
    bb = bias[jv];
  }
  var acc = array<vec4<f32>, 4>(c0 + bb, c1 + bb, c2 + bb, c3 + bb);
  for (var r = 0u; r < 4u; r++) {
    let i = i0 + r;
    if (i < iend) {
      let v = acc[r];
      c[i * n4 + jv] = vec4<f32>(activate(v.x, p.act), activate(v.y, p.act), activate(v.z, p.act), activate(v.w, p.act));
    }
  }
}

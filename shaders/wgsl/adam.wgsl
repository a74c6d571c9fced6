// requires: common params
//
// adam: one Adam step, in place, with L2 weight decay added to the gradient:
//   g' = g + weightDecay·w
//   m = beta1·m + (1−beta1)·g';  v = beta2·v + (1−beta2)·g'²
//   w = w − lr·(m·c1)/(sqrt(v·c2) + eps),  c1 = 1/(1−beta1^t), c2 = 1/(1−beta2^t)

@group(0) @binding(0) var<uniform> p: AdamParams;
@group(0) @binding(1) var<storage, read_write> w: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;

@compute @workgroup_size(EW, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let i = elem_index(wid, nwg, li);
  if (i >= p.n) {
    return;
  }
  let wi = w[i];
  let gi = g[i] + p.weightDecay * wi;
  let mi = p.beta1 * m[i] + (1.0 - p.beta1) * gi;
  let vi = p.beta2 * v[i] + (1.0 - p.beta2) * (gi * gi);
  m[i] = mi;
  v[i] = vi;
  w[i] = wi - p.lr * (mi * p.c1) / (sqrt(vi * p.c2) + p.eps);
}

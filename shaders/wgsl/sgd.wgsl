// requires: common params
//
// sgd: one step of SGD with momentum and weight decay, in place:
//   g' = g + weightDecay·w;  v = momentum·v + g';  w = w − lr·v

@group(0) @binding(0) var<uniform> p: SGDParams;
@group(0) @binding(1) var<storage, read_write> w: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;

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
  let vi = p.momentum * v[i] + gi;
  v[i] = vi;
  w[i] = wi - p.lr * vi;
}

// requires: common params
//
// axpby: out = alpha·x + beta·y elementwise; y is not read when beta is 0
// (so scaling is axpby with beta = 0, and addition alpha = beta = 1).

@group(0) @binding(0) var<uniform> p: ElemParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(EW, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let i = elem_index(wid, nwg, li);
  if (i >= p.n) {
    return;
  }
  var r = p.alpha * x[i];
  if (p.beta != 0.0) {
    r = r + p.beta * y[i];
  }
  out[i] = r;
}

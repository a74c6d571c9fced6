// requires: common rowreduce params
//
// layernorm: y[i,j] = (x[i,j] − μ_i)·r_i·gamma[j] + beta[j], with μ_i the row
// mean, r_i = 1/sqrt(σ²_i + eps) and σ²_i = Σ_j (x[i,j] − μ_i)²/cols (two
// passes, for stability). One workgroup per row.

@group(0) @binding(0) var<uniform> p: RowParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(RW, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let row = row_of(wid, nwg);
  if (row >= p.rows) {
    return;
  }
  let base = row * p.cols;
  let nf = f32(p.cols);
  var s = 0.0;
  for (var j = li; j < p.cols; j += RW) {
    s += x[base + j];
  }
  let mean = wg_reduce(s, li, false) / nf;
  var q = 0.0;
  for (var j = li; j < p.cols; j += RW) {
    let d = x[base + j] - mean;
    q += d * d;
  }
  let variance = wg_reduce(q, li, false) / nf;
  let r = inverseSqrt(variance + p.eps);
  for (var j = li; j < p.cols; j += RW) {
    y[base + j] = (x[base + j] - mean) * r * gamma[j] + beta[j];
  }
}

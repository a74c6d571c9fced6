// requires: common rowreduce params
//
// softmax: y[i,j] = exp(x[i,j] − m_i) / Σ_j exp(x[i,j] − m_i), m_i the row
// maximum (numerically stable). One workgroup per row.

@group(0) @binding(0) var<uniform> p: RowParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(RW, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let row = row_of(wid, nwg);
  if (row >= p.rows) {
    return;
  }
  let base = row * p.cols;
  var mx = neg_inf();
  for (var j = li; j < p.cols; j += RW) {
    mx = max(mx, x[base + j]);
  }
  let m = wg_reduce(mx, li, true);
  var s = 0.0;
  for (var j = li; j < p.cols; j += RW) {
    s += exp(x[base + j] - m);
  }
  let total = wg_reduce(s, li, false);
  for (var j = li; j < p.cols; j += RW) {
    y[base + j] = exp(x[base + j] - m) / total;
  }
}

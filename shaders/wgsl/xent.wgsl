// requires: common rowreduce params
//
// xent: softmax cross-entropy of logits z against target distributions t
// (one-hot rows for class labels), and its gradient:
//   loss[i]   = Σ_j t[i,j]·(log S_i − (z[i,j] − m_i)),  S_i = Σ_j exp(z[i,j] − m_i)
//   grad[i,j] = scale·(exp(z[i,j] − m_i)/S_i − t[i,j])
// scale is 1/rows for a mean loss. One workgroup per row.

@group(0) @binding(0) var<uniform> p: RowParams;
@group(0) @binding(1) var<storage, read> z: array<f32>;
@group(0) @binding(2) var<storage, read> t: array<f32>;
@group(0) @binding(3) var<storage, read_write> loss: array<f32>;
@group(0) @binding(4) var<storage, read_write> grad: array<f32>;

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
    mx = max(mx, z[base + j]);
  }
  let m = wg_reduce(mx, li, true);
  var s = 0.0;
  for (var j = li; j < p.cols; j += RW) {
    s += exp(z[base + j] - m);
  }
  let total = wg_reduce(s, li, false);
  let ls = log(total);
  var l = 0.0;
  for (var j = li; j < p.cols; j += RW) {
    let d = z[base + j] - m;
    l += t[base + j] * (ls - d);
    grad[base + j] = p.scale * (exp(d) / total - t[base + j]);
  }
  let rl = wg_reduce(l, li, false);
  if (li == 0u) {
    loss[row] = rl;
  }
}

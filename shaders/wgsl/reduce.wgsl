// requires: common params
//
// reduce: sums of a rows×cols matrix. axis 0 sums over rows (out has cols
// elements: the bias gradient from dZ); axis 1 sums over columns (out has
// rows elements). One invocation per output element.

@group(0) @binding(0) var<uniform> p: ReduceParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(EW, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let o = elem_index(wid, nwg, li);
  var s = 0.0;
  if (p.axis == 0u) {
    if (o >= p.cols) {
      return;
    }
    for (var i = 0u; i < p.rows; i++) {
      s += x[i * p.cols + o];
    }
  } else {
    if (o >= p.rows) {
      return;
    }
    let base = o * p.cols;
    for (var j = 0u; j < p.cols; j++) {
      s += x[base + j];
    }
  }
  out[o] = s;
}

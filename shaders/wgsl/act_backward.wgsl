// requires: common params
//
// act_backward: dz = dh·act'(z) elementwise: ReLU passes dh where z > 0;
// GELU multiplies by gelu'(z); ACT_NONE copies dh.

@group(0) @binding(0) var<uniform> p: ElemParams;
@group(0) @binding(1) var<storage, read> z: array<f32>;
@group(0) @binding(2) var<storage, read> dh: array<f32>;
@group(0) @binding(3) var<storage, read_write> dz: array<f32>;

@compute @workgroup_size(EW, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let i = elem_index(wid, nwg, li);
  if (i >= p.n) {
    return;
  }
  let x = z[i];
  var d = dh[i];
  if (p.act == ACT_RELU) {
    d = select(0.0, d, x > 0.0);
  } else if (p.act == ACT_GELU) {
    d = d * gelu_grad(x);
  }
  dz[i] = d;
}

// rowreduce.wgsl: one workgroup of RW invocations per row, with a tree
// reduction in workgroup memory. Prepended to kernels that say
// "// requires: rowreduce".

const RW: u32 = 64u;

var<workgroup> red: array<f32, RW>;

// wg_reduce returns the max (is_max) or the sum of v over the workgroup.
// Every invocation must call it (it has barriers).
fn wg_reduce(v: f32, li: u32, is_max: bool) -> f32 {
  red[li] = v;
  workgroupBarrier();
  for (var s = RW / 2u; s > 0u; s = s >> 1u) {
    if (li < s) {
      let o = red[li + s];
      red[li] = select(red[li] + o, max(red[li], o), is_max);
    }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}

// row_of is the row a workgroup handles; dispatches wrap in y.
fn row_of(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return wid.y * nwg.x + wid.x;
}

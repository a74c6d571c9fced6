// requires: common params
//
// im2col: unfolds an NCHW input (batch, ch, h, w) for a kh×kw convolution
// with stride and zero padding into a matrix with one row per output pixel
// (b, oy, ox) — rows = batch·outH·outW — and one column per (c, ky, kx) —
// cols = ch·kh·kw. A convolution is then this matrix times a
// (ch·kh·kw)×outCh weight (matmul with bias and activation), giving NHWC
// output. One invocation per element of the matrix.

@group(0) @binding(0) var<uniform> p: Im2ColParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> cols: array<f32>;

@compute @workgroup_size(EW, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let e = elem_index(wid, nwg, li);
  let ncols = p.ch * p.kh * p.kw;
  let npix = p.outH * p.outW;
  if (e >= p.batch * npix * ncols) {
    return;
  }
  let r = e / ncols;
  let q = e % ncols;
  let bi = r / npix;
  let oy = (r % npix) / p.outW;
  let ox = r % p.outW;
  let ci = q / (p.kh * p.kw);
  let ky = (q / p.kw) % p.kh;
  let kx = q % p.kw;
  // Signed arithmetic: padding can put the tap before the first pixel.
  let iy = i32(oy * p.strideH + ky) - i32(p.padH);
  let ix = i32(ox * p.strideW + kx) - i32(p.padW);
  var v = 0.0;
  if (iy >= 0 && ix >= 0 && iy < i32(p.h) && ix < i32(p.w)) {
    v = x[((bi * p.ch + ci) * p.h + u32(iy)) * p.w + u32(ix)];
  }
  cols[e] = v;
}

// params.wgsl: the uniform parameter structs of every kernel, one source
// of truth for their layout. Each has a Go twin in shaders/params.go laid out
// identically (checked by TestParamsLayout). Kernels say "// requires: params".

struct ElemParams {
  n: u32,
  act: u32,
  alpha: f32,
  beta: f32,
}

struct AdamParams {
  n: u32,
  pad0: u32,
  lr: f32,
  beta1: f32,
  beta2: f32,
  eps: f32,
  c1: f32,
  c2: f32,
  weightDecay: f32,
  pad1: u32,
  pad2: u32,
  pad3: u32,
}

struct Im2ColParams {
  batch: u32,
  ch: u32,
  h: u32,
  w: u32,
  kh: u32,
  kw: u32,
  strideH: u32,
  strideW: u32,
  padH: u32,
  padW: u32,
  outH: u32,
  outW: u32,
}

struct RowParams {
  rows: u32,
  cols: u32,
  scale: f32,
  eps: f32,
}

struct MatMulParams {
  m: u32,
  n: u32,
  k: u32,
  row0: u32,
  aRowStride: u32,
  aColStride: u32,
  bRowStride: u32,
  bColStride: u32,
  act: u32,
  reluIn: u32,
  hasBias: u32,
  rows: u32,
}

struct ReduceParams {
  rows: u32,
  cols: u32,
  axis: u32,
  pad0: u32,
}

struct SGDParams {
  n: u32,
  pad0: u32,
  lr: f32,
  momentum: f32,
  weightDecay: f32,
  pad1: u32,
  pad2: u32,
  pad3: u32,
}

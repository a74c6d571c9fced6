// common.wgsl: helpers shared by the kernels. A kernel that starts with a
// line "// requires: common" gets this file prepended by shaders.WGSL.

const ACT_NONE: u32 = 0u;
const ACT_RELU: u32 = 1u;
const ACT_GELU: u32 = 2u;

// GELU, tanh form: gelu(x) = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
const GELU_C: f32 = 0.7978845608028654;
const GELU_A: f32 = 0.044715;
// Beyond |x| > GELU_SAT the float32 tanh is exactly ±1, so gelu(x) is x or
// 0 and gelu'(x) is 1 or 0; clamping there avoids x³ overflowing to ∞·0.
const GELU_SAT: f32 = 10.0;

// Invocations per workgroup of the elementwise kernels.
const EW: u32 = 64u;

// tanh_stable is tanh(y) as sign(y)·(1−e)/(1+e) with e = exp(−2|y|): it
// never overflows, unlike some drivers' tanh for large |y|.
fn tanh_stable(y: f32) -> f32 {
  let e = exp(-2.0 * abs(y));
  return sign(y) * ((1.0 - e) / (1.0 + e));
}

fn gelu(x: f32) -> f32 {
  if (abs(x) > GELU_SAT) {
    return select(0.0, x, x > 0.0);
  }
  let t = tanh_stable(GELU_C * (x + GELU_A * (x * x * x)));
  return 0.5 * x * (1.0 + t);
}

// gelu_grad is d gelu / dx of the tanh form.
fn gelu_grad(x: f32) -> f32 {
  if (abs(x) > GELU_SAT) {
    return select(0.0, 1.0, x > 0.0);
  }
  let t = tanh_stable(GELU_C * (x + GELU_A * (x * x * x)));
  let du = GELU_C * (1.0 + 3.0 * GELU_A * (x * x));
  return 0.5 * (1.0 + t) + 0.5 * x * ((1.0 - t * t) * du);
}

fn activate(x: f32, act: u32) -> f32 {
  switch act {
    case 1u: { return max(x, 0.0); }
    case 2u: { return gelu(x); }
    default: { return x; }
  }
}

// neg_inf is −∞ (for max reductions and the "no ReLU" floor).
// Chromium's compiler rejects a constant bitcast to an infinity ("value
// -inf cannot be represented as 'f32'"), so the bits go through a let.
fn neg_inf() -> f32 {
  let bits = 0xff800000u;
  return bitcast<f32>(bits);
}

// elem_index is the element an invocation of an elementwise kernel handles;
// dispatches wrap in y when x would exceed the per-dimension limit.
fn elem_index(wid: vec3<u32>, nwg: vec3<u32>, li: u32) -> u32 {
  return (wid.y * nwg.x + wid.x) * EW + li;
}

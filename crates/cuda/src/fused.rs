//! Code generation for fused elementwise instructions: a [`FusedExpr`] (a tree of unary,
//! binary and `where` steps over full-size inputs and scalars, formed by gorgon-autodiff's
//! compiler) becomes one CUDA C kernel that reads each input once and writes the output
//! once, 16 bytes per load and store. The source is generated on the host (pure text, tested
//! without a GPU) and compiled with NVRTC when a machine is created; the math is the same
//! device functions the one-op kernels use (pasted from `kernels/elementwise.cu`), so fused
//! and unfused programs compute the same values.

use crate::kernels::COMMON;
use gorgon_autodiff::fused::{FusedExpr, Step};
use gorgon_core::DType;
use std::fmt::Write as _;

/// The float device functions of `elementwise.cu` (between its `FUSED:BEGIN` / `FUSED:END`
/// markers): `unary_float`, `binary_float` and their helpers.
fn device_functions() -> String {
    let src = include_str!("kernels/elementwise.cu");
    let mut out = String::new();
    let mut rest = src;
    while let Some(b) = rest.find("// FUSED:BEGIN") {
        let body = &rest[b..];
        let e = body.find("// FUSED:END").unwrap_or(body.len());
        out.push_str(&body[..e]);
        out.push('\n');
        rest = &body[e..];
        if rest.len() > 12 {
            rest = &rest[12..];
        } else {
            break;
        }
    }
    out
}

/// A C expression with exactly the bits of `v` (handles ±inf and NaN parameters too).
fn exact_double(v: f64) -> String {
    format!("__longlong_as_double(0x{:016x}LL)", v.to_bits())
}

/// 64-bit FNV-1a of the source: names the kernel, so two expressions never share a name.
fn hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

/// A generated kernel: its `extern "C"` name and full source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FusedKernel {
    /// The kernel's name (`gorgon_fused_<hash>`).
    pub name: String,
    /// Complete CUDA C source (common header, device functions, kernel).
    pub source: String,
    /// Elements per vector load (4 for float32, 2 for float64).
    pub vec: usize,
}

/// Generates the kernel of `expr` over `dtype` (float32 or float64). `scalar[k]` says that
/// input `k` holds one element, broadcast to every output element; the others hold exactly
/// as many elements as the output. The kernel's parameters are `(i64 n, const T* in0, …,
/// T* out)`.
///
/// ```
/// use gorgon_autodiff::fused::{FusedExpr, Step};
/// use gorgon_core::kernels::elementwise::{BinaryOp, UnaryOp};
/// // tanh(a * b + c)
/// let e = FusedExpr { steps: vec![Step::Input(0), Step::Input(1), Step::Binary(BinaryOp::Mul, 0, 1),
///     Step::Input(2), Step::Binary(BinaryOp::Add, 2, 3), Step::Unary(UnaryOp::Tanh, 4)] };
/// let k = gorgon_cuda::fused::kernel_source(&e, gorgon_core::DType::F32, &[false, false, true]).unwrap();
/// assert!(k.source.contains(&k.name) && k.vec == 4);
/// ```
pub fn kernel_source(expr: &FusedExpr, dtype: DType, scalar: &[bool]) -> Option<FusedKernel> {
    let (t, vec) = match dtype {
        DType::F32 => ("float", 4),
        DType::F64 => ("double", 2),
        _ => return None,
    };
    let n_in = scalar.len();
    if expr.steps.is_empty() {
        return None;
    }
    // The expression as a device function of one element per input.
    let mut body = String::new();
    let params: Vec<String> = (0..n_in).map(|k| format!("{t} x{k}")).collect();
    let _ = writeln!(body, "__device__ __forceinline__ {t} gorgon_expr({}) {{", params.join(", "));
    for (i, s) in expr.steps.iter().enumerate() {
        let rhs = match *s {
            Step::Input(k) if k < n_in => format!("x{k}"),
            Step::Input(_) => return None,
            Step::Unary(u, a) if a < i => {
                let (code, p0, p1) = crate::ops::unary_code(u);
                format!("unary_float<{t}>({code}, s{a}, ({t}){}, ({t}){})", exact_double(p0), exact_double(p1))
            }
            Step::Binary(b, x, y) if x < i && y < i => format!("binary_float<{t}>({}, s{x}, s{y})", crate::ops::binary_code(b)),
            Step::Where(c, x, y) if c < i && x < i && y < i => format!("(s{c} != ({t})0) ? s{x} : s{y}"),
            _ => return None,
        };
        let _ = writeln!(body, "  const {t} s{i} = {rhs};");
    }
    let _ = writeln!(body, "  return s{};\n}}", expr.steps.len() - 1);

    let name = format!("gorgon_fused_{:016x}", hash(&format!("{t}{scalar:?}{body}")));
    let vt = format!("gorgon_vec_{t}");
    let mut k = String::new();
    let _ = writeln!(k, "struct __align__(16) {vt} {{ {t} v[{vec}]; }};");
    let args: Vec<String> = (0..n_in).map(|j| format!("const {t}* __restrict__ in{j}")).collect();
    let _ = writeln!(k, "extern \"C\" __global__ void {name}(i64 n, {}{}{t}* __restrict__ out) {{", args.join(", "), if n_in > 0 { ", " } else { "" });
    let _ = writeln!(k, "  const i64 tid = (i64)blockIdx.x * blockDim.x + threadIdx.x;");
    let _ = writeln!(k, "  const i64 stride = (i64)blockDim.x * gridDim.x;");
    for (j, &sc) in scalar.iter().enumerate() {
        if sc {
            let _ = writeln!(k, "  const {t} c{j} = in{j}[0];");
        }
    }
    let _ = writeln!(k, "  const i64 nv = n / {vec};");
    let _ = writeln!(k, "  for (i64 v = tid; v < nv; v += stride) {{");
    for (j, &sc) in scalar.iter().enumerate() {
        if !sc {
            let _ = writeln!(k, "    const {vt} a{j} = reinterpret_cast<const {vt}*>(in{j})[v];");
        }
    }
    let _ = writeln!(k, "    {vt} r;");
    let _ = writeln!(k, "#pragma unroll\n    for (int l = 0; l < {vec}; ++l) {{");
    let lane: Vec<String> = scalar.iter().enumerate().map(|(j, &sc)| if sc { format!("c{j}") } else { format!("a{j}.v[l]") }).collect();
    let _ = writeln!(k, "      r.v[l] = gorgon_expr({});\n    }}", lane.join(", "));
    let _ = writeln!(k, "    reinterpret_cast<{vt}*>(out)[v] = r;\n  }}");
    let tail: Vec<String> = scalar.iter().enumerate().map(|(j, &sc)| if sc { format!("c{j}") } else { format!("in{j}[i]") }).collect();
    let _ = writeln!(k, "  for (i64 i = nv * {vec} + tid; i < n; i += stride) out[i] = gorgon_expr({});\n}}", tail.join(", "));

    let source = format!("{COMMON}\n#line 1 \"elementwise.cu (fused)\"\n{}\n#line 1 \"{name}.cu\"\n{body}\n{k}", device_functions());
    Some(FusedKernel { name, source, vec })
}

#[cfg(test)]
mod tests {
    use super::*;
    use gorgon_core::kernels::elementwise::{BinaryOp, UnaryOp};

    fn tanh_fma() -> FusedExpr {
        FusedExpr {
            steps: vec![
                Step::Input(0),
                Step::Input(1),
                Step::Binary(BinaryOp::Mul, 0, 1),
                Step::Input(2),
                Step::Binary(BinaryOp::Add, 2, 3),
                Step::Unary(UnaryOp::Tanh, 4),
            ],
        }
    }

    #[test]
    fn the_source_holds_the_device_functions_and_one_kernel() {
        let k = kernel_source(&tanh_fma(), DType::F64, &[false, true, false]).unwrap();
        assert!(k.source.contains("unary_float") && k.source.contains("binary_float") && k.source.contains("float_floordiv"));
        assert!(!k.source.contains("UNARY_FLOAT"), "only the marked device functions are pasted");
        assert!(k.source.contains("const double c1 = in1[0];"));
        assert!(k.source.contains(&format!("void {}(i64 n, const double* __restrict__ in0", k.name)));
        assert_eq!(k.vec, 2);
    }

    #[test]
    fn names_differ_by_expression_dtype_and_scalars() {
        let a = kernel_source(&tanh_fma(), DType::F32, &[false, false, false]).unwrap();
        let b = kernel_source(&tanh_fma(), DType::F32, &[false, true, false]).unwrap();
        let c = kernel_source(&tanh_fma(), DType::F64, &[false, false, false]).unwrap();
        assert!(a.name != b.name && a.name != c.name && b.name != c.name);
        assert_eq!(a, kernel_source(&tanh_fma(), DType::F32, &[false, false, false]).unwrap());
    }

    #[test]
    fn parameters_are_bit_exact_and_bad_expressions_are_refused() {
        let e = FusedExpr { steps: vec![Step::Input(0), Step::Unary(UnaryOp::Clip(f64::NEG_INFINITY, 0.1), 0)] };
        let k = kernel_source(&e, DType::F32, &[false]).unwrap();
        assert!(k.source.contains("0xfff0000000000000") && k.source.contains("0x3fb999999999999a"));
        assert!(kernel_source(&e, DType::I32, &[false]).is_none());
        let bad = FusedExpr { steps: vec![Step::Input(3)] };
        assert!(kernel_source(&bad, DType::F32, &[false]).is_none());
        let fwd = FusedExpr { steps: vec![Step::Unary(UnaryOp::Neg, 0)] };
        assert!(kernel_source(&fwd, DType::F32, &[false]).is_none());
    }
}

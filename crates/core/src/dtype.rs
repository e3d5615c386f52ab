//! Element types: the runtime [`DType`] enum and the compile-time [`Element`] / [`Float`]
//! traits that kernels are generic over. Owns nothing else.

use std::fmt;

/// The runtime element type of a tensor.
///
/// ```
/// use gorgon_core::DType;
/// assert_eq!(DType::parse("float32"), Some(DType::F32));
/// assert_eq!(DType::F64.name(), "float64");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    /// IEEE-754 single precision.
    F32,
    /// IEEE-754 double precision.
    F64,
    /// 32-bit signed integer.
    I32,
    /// 64-bit signed integer.
    I64,
    /// Boolean (one byte).
    Bool,
}

impl DType {
    /// All dtypes, in a fixed order.
    pub const ALL: [DType; 5] = [DType::F32, DType::F64, DType::I32, DType::I64, DType::Bool];

    /// NumPy's name for the dtype (`"float32"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::F64 => "float64",
            DType::I32 => "int32",
            DType::I64 => "int64",
            DType::Bool => "bool",
        }
    }

    /// Parses NumPy's name (`"float32"`, `"bool_"` and `"bool"` both accepted).
    pub fn parse(s: &str) -> Option<DType> {
        Some(match s {
            "float32" | "f32" => DType::F32,
            "float64" | "f64" | "float" => DType::F64,
            "int32" | "i32" => DType::I32,
            "int64" | "i64" | "int" => DType::I64,
            "bool" | "bool_" => DType::Bool,
            _ => return None,
        })
    }

    /// Size of one element in bytes.
    pub fn size_of(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F64 | DType::I64 => 8,
            DType::Bool => 1,
        }
    }

    /// True for floating-point dtypes.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64)
    }

    /// True for signed integer dtypes.
    pub fn is_int(self) -> bool {
        matches!(self, DType::I32 | DType::I64)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A Rust type that can be a tensor element.
pub trait Element: Copy + Send + Sync + PartialOrd + fmt::Debug + Default + 'static {
    /// The runtime dtype of this type.
    const DTYPE: DType;
    /// Converts from f64 (truncating toward zero for integers, `!= 0` for bool).
    fn from_f64(v: f64) -> Self;
    /// Converts to f64 (bool → 0/1).
    fn to_f64(self) -> f64;
    /// Additive identity.
    fn zero() -> Self;
    /// Multiplicative identity.
    fn one() -> Self;
    /// Wraps a typed array as a [`Tensor`](crate::Tensor).
    fn into_tensor(a: ndarray::ArrayD<Self>) -> crate::Tensor;
    /// Wraps a typed view as a [`TensorView`](crate::TensorView).
    fn into_view(a: ndarray::ArrayViewD<'_, Self>) -> crate::TensorView<'_>;
    /// The typed array inside `t`, when its dtype is `Self`.
    fn tensor_ref(t: &crate::Tensor) -> Option<&ndarray::ArrayD<Self>>;
    /// The typed array inside `t`, mutably, when its dtype is `Self`.
    fn tensor_mut(t: &mut crate::Tensor) -> Option<&mut ndarray::ArrayD<Self>>;
    /// The typed view inside `v`, when its dtype is `Self`.
    fn view_ref<'a>(v: &crate::TensorView<'a>) -> Option<ndarray::ArrayViewD<'a, Self>>;
}

/// A floating-point element type (f32, f64): the types every differentiable kernel supports.
pub trait Float: Element + num_like::FloatOps {}

/// Minimal float operations needed by generic kernels (kept local to avoid a num-traits
/// dependency in the public API).
pub mod num_like {
    /// Elementary float functions, implemented for f32 and f64 by delegating to std.
    pub trait FloatOps:
        Copy
        + std::ops::Add<Output = Self>
        + std::ops::Sub<Output = Self>
        + std::ops::Mul<Output = Self>
        + std::ops::Div<Output = Self>
        + std::ops::Neg<Output = Self>
        + std::ops::AddAssign
        + std::ops::MulAssign
    {
        /// e^x
        fn exp(self) -> Self;
        /// ln x
        fn ln(self) -> Self;
        /// ln(1+x)
        fn ln_1p(self) -> Self;
        /// e^x − 1
        fn exp_m1(self) -> Self;
        /// √x
        fn sqrt(self) -> Self;
        /// tanh x
        fn tanh(self) -> Self;
        /// |x|
        fn abs(self) -> Self;
        /// x^y
        fn powf(self, y: Self) -> Self;
        /// max (NaN-propagating is not required here)
        fn max(self, o: Self) -> Self;
        /// min
        fn min(self, o: Self) -> Self;
        /// true if NaN
        fn is_nan(self) -> bool;
        /// true if finite
        fn is_finite(self) -> bool;
        /// +∞
        fn infinity() -> Self;
        /// −∞
        fn neg_infinity() -> Self;
    }
    macro_rules! impl_float_ops {
        ($t:ty) => {
            impl FloatOps for $t {
                #[inline] fn exp(self) -> Self { <$t>::exp(self) }
                #[inline] fn ln(self) -> Self { <$t>::ln(self) }
                #[inline] fn ln_1p(self) -> Self { <$t>::ln_1p(self) }
                #[inline] fn exp_m1(self) -> Self { <$t>::exp_m1(self) }
                #[inline] fn sqrt(self) -> Self { <$t>::sqrt(self) }
                #[inline] fn tanh(self) -> Self { <$t>::tanh(self) }
                #[inline] fn abs(self) -> Self { <$t>::abs(self) }
                #[inline] fn powf(self, y: Self) -> Self { <$t>::powf(self, y) }
                #[inline] fn max(self, o: Self) -> Self { <$t>::max(self, o) }
                #[inline] fn min(self, o: Self) -> Self { <$t>::min(self, o) }
                #[inline] fn is_nan(self) -> bool { <$t>::is_nan(self) }
                #[inline] fn is_finite(self) -> bool { <$t>::is_finite(self) }
                #[inline] fn infinity() -> Self { <$t>::INFINITY }
                #[inline] fn neg_infinity() -> Self { <$t>::NEG_INFINITY }
            }
        };
    }
    impl_float_ops!(f32);
    impl_float_ops!(f64);
}

macro_rules! impl_element {
    ($t:ty, $d:expr, $var:ident, $zero:expr, $one:expr, |$v:ident| $from:expr, |$s:ident| $to:expr) => {
        impl Element for $t {
            const DTYPE: DType = $d;
            #[inline]
            fn from_f64($v: f64) -> Self { $from }
            #[inline]
            fn to_f64(self) -> f64 { let $s = self; $to }
            #[inline]
            fn zero() -> Self { $zero }
            #[inline]
            fn one() -> Self { $one }
            #[inline]
            fn into_tensor(a: ndarray::ArrayD<Self>) -> crate::Tensor { crate::Tensor::$var(a) }
            #[inline]
            fn into_view(a: ndarray::ArrayViewD<'_, Self>) -> crate::TensorView<'_> { crate::TensorView::$var(a) }
            #[inline]
            fn tensor_ref(t: &crate::Tensor) -> Option<&ndarray::ArrayD<Self>> {
                if let crate::Tensor::$var(a) = t { Some(a) } else { None }
            }
            #[inline]
            fn tensor_mut(t: &mut crate::Tensor) -> Option<&mut ndarray::ArrayD<Self>> {
                if let crate::Tensor::$var(a) = t { Some(a) } else { None }
            }
            #[inline]
            fn view_ref<'a>(v: &crate::TensorView<'a>) -> Option<ndarray::ArrayViewD<'a, Self>> {
                if let crate::TensorView::$var(a) = v { Some(a.clone()) } else { None }
            }
        }
    };
}
impl_element!(f32, DType::F32, F32, 0.0, 1.0, |v| v as f32, |s| s as f64);
impl_element!(f64, DType::F64, F64, 0.0, 1.0, |v| v, |s| s);
impl_element!(i32, DType::I32, I32, 0, 1, |v| v as i32, |s| s as f64);
impl_element!(i64, DType::I64, I64, 0, 1, |v| v as i64, |s| s as f64);
impl_element!(bool, DType::Bool, Bool, false, true, |v| v != 0.0, |s| if s { 1.0 } else { 0.0 });
impl Float for f32 {}
impl Float for f64 {}

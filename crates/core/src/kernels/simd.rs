//! Run-time SIMD level detection. `GORGON_SIMD=scalar` forces the scalar fallback.
//!
//! The level is detected once (on first use) and cached. The environment variable
//! `GORGON_SIMD` can lower it: `scalar` (also `none`/`off`) forces portable scalar code,
//! `avx2` caps x86-64 at AVX2+FMA, `avx512` allows everything the CPU has (the default), and
//! `neon` is accepted on aarch64. Unknown values are ignored. The variable can only lower
//! the level: asking for an instruction set the CPU lacks never enables it.
//!
//! ```
//! use gorgon_core::kernels::simd::{level, hardware_level, SimdLevel};
//! assert!(level() <= hardware_level() || hardware_level() == SimdLevel::Neon);
//! ```

use std::sync::OnceLock;

/// The instruction set a kernel may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SimdLevel {
    /// Portable scalar code.
    Scalar,
    /// x86-64 AVX2 + FMA.
    Avx2Fma,
    /// x86-64 AVX-512F.
    Avx512,
    /// aarch64 NEON.
    Neon,
}

impl SimdLevel {
    /// A short lowercase name (`"scalar"`, `"avx2"`, `"avx512"`, `"neon"`), the same spelling
    /// `GORGON_SIMD` accepts.
    pub fn name(self) -> &'static str {
        match self {
            SimdLevel::Scalar => "scalar",
            SimdLevel::Avx2Fma => "avx2",
            SimdLevel::Avx512 => "avx512",
            SimdLevel::Neon => "neon",
        }
    }
}

static HARDWARE: OnceLock<SimdLevel> = OnceLock::new();
static LEVEL: OnceLock<SimdLevel> = OnceLock::new();

fn detect_hardware() -> SimdLevel {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
        {
            return SimdLevel::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            return SimdLevel::Avx2Fma;
        }
        SimdLevel::Scalar
    }
    #[cfg(target_arch = "aarch64")]
    {
        if std::arch::is_aarch64_feature_detected!("neon") {
            return SimdLevel::Neon;
        }
        SimdLevel::Scalar
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        SimdLevel::Scalar
    }
}

/// The best level this CPU supports, ignoring `GORGON_SIMD`.
pub fn hardware_level() -> SimdLevel {
    *HARDWARE.get_or_init(detect_hardware)
}

/// True when this CPU can run code written for `level` (`Scalar` always can).
///
/// ```
/// use gorgon_core::kernels::simd::{supports, SimdLevel};
/// assert!(supports(SimdLevel::Scalar));
/// ```
pub fn supports(level: SimdLevel) -> bool {
    let hw = hardware_level();
    match level {
        SimdLevel::Scalar => true,
        SimdLevel::Avx2Fma => matches!(hw, SimdLevel::Avx2Fma | SimdLevel::Avx512),
        SimdLevel::Avx512 => hw == SimdLevel::Avx512,
        SimdLevel::Neon => hw == SimdLevel::Neon,
    }
}

/// Applies a `GORGON_SIMD` value to a hardware level (pure; used by [`level`]).
///
/// ```
/// use gorgon_core::kernels::simd::{apply_env_cap, SimdLevel::*};
/// assert_eq!(apply_env_cap(Avx512, Some("scalar")), Scalar);
/// assert_eq!(apply_env_cap(Avx512, Some("avx2")), Avx2Fma);
/// assert_eq!(apply_env_cap(Avx2Fma, Some("avx512")), Avx2Fma);
/// assert_eq!(apply_env_cap(Avx512, None), Avx512);
/// ```
pub fn apply_env_cap(hw: SimdLevel, env: Option<&str>) -> SimdLevel {
    let Some(v) = env else { return hw };
    match v.trim().to_ascii_lowercase().as_str() {
        "scalar" | "none" | "off" | "0" | "generic" => SimdLevel::Scalar,
        "avx2" | "avx2fma" | "avx2_fma" => {
            if matches!(hw, SimdLevel::Avx512 | SimdLevel::Avx2Fma) {
                SimdLevel::Avx2Fma
            } else {
                hw
            }
        }
        _ => hw,
    }
}

/// The level in force (detected once, overridable with `GORGON_SIMD`).
pub fn level() -> SimdLevel {
    *LEVEL.get_or_init(|| {
        let env = std::env::var("GORGON_SIMD").ok();
        apply_env_cap(hardware_level(), env.as_deref())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_is_supported() {
        assert!(supports(level()));
        assert!(supports(hardware_level()));
        assert_eq!(apply_env_cap(SimdLevel::Scalar, Some("avx2")), SimdLevel::Scalar);
        assert_eq!(apply_env_cap(SimdLevel::Neon, Some("avx2")), SimdLevel::Neon);
        assert_eq!(apply_env_cap(SimdLevel::Neon, Some("SCALAR")), SimdLevel::Scalar);
        if std::env::var("GORGON_SIMD").map(|v| v == "scalar").unwrap_or(false) {
            assert_eq!(level(), SimdLevel::Scalar);
        }
    }
}

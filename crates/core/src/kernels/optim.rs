//! Fused solver update kernels (one pass over a parameter and its state per step).
//!
//! [`apply`] preprocesses the gradient ([`GradPrep`]) and applies one [`SolverRule`] step to a
//! parameter slice and its state buffers in a single sweep. The formulas (and the order of
//! the floating-point operations) follow PyTorch's single-tensor optimizer implementations;
//! the arithmetic is done in the parameter's own type, with the f64 hyperparameters (and
//! derived constants such as `1 − β` or `lr / (1 − β₁ᵗ)`) computed in f64 and then converted,
//! as PyTorch does with Python-float hyperparameters.
//!
//! [`dot`] and [`axpy_update`] support the Barzilai–Borwein step size
//! `η = ⟨Δw, Δg⟩ / ‖Δg‖²` computed over all parameters.
//!
//! ```
//! use gorgon_core::kernels::optim::{apply, state_len, GradPrep, SolverRule};
//! let rule = SolverRule::Sgd { lr: 0.5, momentum: 0.0, nesterov: false, dampening: 0.0 };
//! let prep = GradPrep { batch_size: 2.0, clip: None, l1: 0.0, l2: 0.0 };
//! assert_eq!(state_len(&rule), 0);
//! let mut w = vec![1.0f64, 2.0];
//! apply(&rule, &prep, 1, &mut w, &[4.0, -4.0], &mut []).unwrap();
//! assert_eq!(w, vec![0.0, 3.0]);
//! ```

use crate::error::CoreError;
use crate::{Float, Result};

/// Gradient preprocessing common to all solvers, applied in this order:
/// `g ← g / batch_size; g ← clip(g, ±clip); g ← g + l2·w + l1·sign(w)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GradPrep {
    /// Divisor of the raw (summed) gradient; 1 leaves it unchanged.
    pub batch_size: f64,
    /// Elementwise clip bound (`|g| ≤ clip`), if any.
    pub clip: Option<f64>,
    /// L1 penalty coefficient (adds `l1·sign(w)`, with `sign(0) = 0`).
    pub l1: f64,
    /// L2 penalty coefficient (adds `l2·w`; PyTorch's `weight_decay`).
    pub l2: f64,
}

impl Default for GradPrep {
    fn default() -> Self {
        GradPrep { batch_size: 1.0, clip: None, l1: 0.0, l2: 0.0 }
    }
}

/// One solver's update rule and hyperparameters (all f64), matching `torch.optim`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SolverRule {
    /// `torch.optim.SGD`: `buf = μ·buf + (1 − dampening)·g` (buf = g at the first step),
    /// `d = g + μ·buf` (Nesterov) or `d = buf`; `w −= lr·d`. No state when `momentum == 0`.
    Sgd {
        /// Learning rate.
        lr: f64,
        /// Momentum factor μ.
        momentum: f64,
        /// Nesterov momentum.
        nesterov: bool,
        /// Dampening of the momentum update.
        dampening: f64,
    },
    /// `torch.optim.Adagrad` (lr_decay 0, initial accumulator 0):
    /// `s += g²; w −= lr·g / (√s + eps)`.
    AdaGrad {
        /// Learning rate.
        lr: f64,
        /// Denominator guard.
        eps: f64,
    },
    /// `torch.optim.RMSprop` (not centered, no momentum):
    /// `v = α·v + (1 − α)·g²; w −= lr·g / (√v + eps)`.
    RMSProp {
        /// Learning rate.
        lr: f64,
        /// Smoothing constant α.
        alpha: f64,
        /// Denominator guard.
        eps: f64,
    },
    /// `torch.optim.Adam` (amsgrad off): `m = lerp(m, g, 1 − β₁)`, `v = β₂·v + (1 − β₂)·g²`,
    /// `w −= (lr / (1 − β₁ᵗ))·m / (√v / √(1 − β₂ᵗ) + eps)`.
    Adam {
        /// Learning rate.
        lr: f64,
        /// First-moment decay β₁.
        beta1: f64,
        /// Second-moment decay β₂.
        beta2: f64,
        /// Denominator guard.
        eps: f64,
    },
    /// `torch.optim.AdamW`: `w *= 1 − lr·weight_decay`, then the Adam step.
    AdamW {
        /// Learning rate.
        lr: f64,
        /// First-moment decay β₁.
        beta1: f64,
        /// Second-moment decay β₂.
        beta2: f64,
        /// Denominator guard.
        eps: f64,
        /// Decoupled weight decay.
        weight_decay: f64,
    },
    /// `torch.optim.Adadelta`: `v = ρv + (1 − ρ)g²; δ = √(u + eps) / √(v + eps)·g;
    /// u = ρu + (1 − ρ)δ²; w −= lr·δ`.
    AdaDelta {
        /// Learning rate (scales δ).
        lr: f64,
        /// Decay ρ.
        rho: f64,
        /// Guard inside both square roots.
        eps: f64,
    },
}

/// Number of state buffers (same length as the parameter) the rule keeps.
///
/// SGD keeps its momentum buffer (only when `momentum != 0`); AdaGrad its sum of squares;
/// RMSProp its square average; Adam/AdamW `[m, v]`; AdaDelta `[v, u]`. Buffers start zeroed.
pub fn state_len(rule: &SolverRule) -> usize {
    match rule {
        SolverRule::Sgd { momentum, .. } => usize::from(*momentum != 0.0),
        SolverRule::AdaGrad { .. } | SolverRule::RMSProp { .. } => 1,
        SolverRule::Adam { .. } | SolverRule::AdamW { .. } | SolverRule::AdaDelta { .. } => 2,
    }
}

/// Gradient preprocessing with constants already in `T`.
#[derive(Clone, Copy)]
struct Prep<T> {
    batch: Option<T>,
    clip: Option<T>,
    l1: Option<T>,
    l2: Option<T>,
}

impl<T: Float> Prep<T> {
    fn new(p: &GradPrep) -> Self {
        let nz = |v: f64| if v != 0.0 { Some(T::from_f64(v)) } else { None };
        Prep {
            batch: if p.batch_size != 1.0 { Some(T::from_f64(p.batch_size)) } else { None },
            clip: p.clip.map(T::from_f64),
            l1: nz(p.l1),
            l2: nz(p.l2),
        }
    }

    #[inline(always)]
    fn grad(&self, g: T, w: T) -> T {
        let mut g = g;
        if let Some(b) = self.batch {
            g = g / b;
        }
        if let Some(c) = self.clip {
            if g > c {
                g = c;
            } else if g < -c {
                g = -c;
            }
        }
        if let Some(l2) = self.l2 {
            g += l2 * w;
        }
        if let Some(l1) = self.l1 {
            let s = if w > T::zero() {
                T::one()
            } else if w < T::zero() {
                -T::one()
            } else {
                T::zero()
            };
            g += l1 * s;
        }
        g
    }
}

/// One rule with its per-step constants converted to `T`.
#[derive(Clone, Copy)]
enum Kern<T> {
    Sgd { neg_lr: T },
    SgdMomentum { neg_lr: T, mu: T, keep: T, first: bool, nesterov: bool },
    AdaGrad { neg_lr: T, eps: T },
    RMSProp { neg_lr: T, alpha: T, one_m_alpha: T, eps: T },
    Adam { decay: Option<T>, lerp_w: T, lerp_low: bool, lerp_1mw: T, beta2: T, one_m_beta2: T, bc2_sqrt: T, eps: T, neg_step: T },
    AdaDelta { neg_lr: T, rho: T, one_m_rho: T, eps: T },
}

impl<T: Float> Kern<T> {
    fn new(rule: &SolverRule, t: u64) -> Self {
        let c = T::from_f64;
        match *rule {
            SolverRule::Sgd { lr, momentum, nesterov, dampening } => {
                if momentum == 0.0 {
                    Kern::Sgd { neg_lr: c(-lr) }
                } else {
                    Kern::SgdMomentum { neg_lr: c(-lr), mu: c(momentum), keep: c(1.0 - dampening), first: t <= 1, nesterov }
                }
            }
            SolverRule::AdaGrad { lr, eps } => Kern::AdaGrad { neg_lr: c(-lr), eps: c(eps) },
            SolverRule::RMSProp { lr, alpha, eps } => Kern::RMSProp { neg_lr: c(-lr), alpha: c(alpha), one_m_alpha: c(1.0 - alpha), eps: c(eps) },
            SolverRule::Adam { lr, beta1, beta2, eps } => Self::adam(lr, beta1, beta2, eps, None, t),
            SolverRule::AdamW { lr, beta1, beta2, eps, weight_decay } => {
                Self::adam(lr, beta1, beta2, eps, Some(1.0 - lr * weight_decay), t)
            }
            SolverRule::AdaDelta { lr, rho, eps } => Kern::AdaDelta { neg_lr: c(-lr), rho: c(rho), one_m_rho: c(1.0 - rho), eps: c(eps) },
        }
    }

    fn adam(lr: f64, beta1: f64, beta2: f64, eps: f64, decay: Option<f64>, t: u64) -> Self {
        let c = T::from_f64;
        let ti = i32::try_from(t).unwrap_or(i32::MAX);
        let bc1 = 1.0 - beta1.powi(ti);
        let bc2 = 1.0 - beta2.powi(ti);
        let w = c(1.0 - beta1);
        Kern::Adam {
            decay: decay.map(c),
            lerp_w: w,
            lerp_low: w.to_f64().abs() < 0.5,
            lerp_1mw: T::one() - w,
            beta2: c(beta2),
            one_m_beta2: c(1.0 - beta2),
            bc2_sqrt: c(bc2.sqrt()),
            eps: c(eps),
            neg_step: c(-(lr / bc1)),
        }
    }
}

impl<T: Float> Prep<T> {
    /// No preprocessing at all (the gradient is used as it is).
    fn is_plain(&self) -> bool {
        self.batch.is_none() && self.clip.is_none() && self.l1.is_none() && self.l2.is_none()
    }
}

/// Applies `k` to one chunk. `s0`/`s1` are the state buffers (empty when unused).
///
/// Without gradient preprocessing (the common case) the loops are instantiated without
/// [`Prep::grad`]'s per-element branches, so they vectorize; the arithmetic is the same.
#[inline(never)]
fn run_chunk<T: Float>(k: &Kern<T>, prep: &Prep<T>, w: &mut [T], g: &[T], s0: &mut [T], s1: &mut [T]) {
    if prep.is_plain() {
        run_chunk_with::<T, true>(k, prep, w, g, s0, s1)
    } else {
        run_chunk_with::<T, false>(k, prep, w, g, s0, s1)
    }
}

#[inline(always)]
fn run_chunk_with<T: Float, const PLAIN: bool>(k: &Kern<T>, prep: &Prep<T>, w: &mut [T], g: &[T], s0: &mut [T], s1: &mut [T]) {
    let n = w.len();
    let g = &g[..n];
    let prep = |g: T, w: T| if PLAIN { g } else { prep.grad(g, w) };
    match *k {
        Kern::Sgd { neg_lr } => {
            for (w, &g) in w.iter_mut().zip(g) {
                let d = prep(g, *w);
                *w += neg_lr * d;
            }
        }
        Kern::SgdMomentum { neg_lr, mu, keep, first, nesterov } => {
            let s0 = &mut s0[..n];
            for ((w, &g), b) in w.iter_mut().zip(g).zip(s0.iter_mut()) {
                let d = prep(g, *w);
                *b = if first { d } else { *b * mu + keep * d };
                let step = if nesterov { d + mu * *b } else { *b };
                *w += neg_lr * step;
            }
        }
        Kern::AdaGrad { neg_lr, eps } => {
            let s0 = &mut s0[..n];
            for ((w, &g), s) in w.iter_mut().zip(g).zip(s0.iter_mut()) {
                let d = prep(g, *w);
                *s += d * d;
                let std = s.sqrt() + eps;
                *w += neg_lr * d / std;
            }
        }
        Kern::RMSProp { neg_lr, alpha, one_m_alpha, eps } => {
            let s0 = &mut s0[..n];
            for ((w, &g), v) in w.iter_mut().zip(g).zip(s0.iter_mut()) {
                let d = prep(g, *w);
                *v = *v * alpha + one_m_alpha * d * d;
                let avg = v.sqrt() + eps;
                *w += neg_lr * d / avg;
            }
        }
        Kern::Adam { decay, lerp_w, lerp_low, lerp_1mw, beta2, one_m_beta2, bc2_sqrt, eps, neg_step } => {
            let (s0, s1) = (&mut s0[..n], &mut s1[..n]);
            for (((w, &g), m), v) in w.iter_mut().zip(g).zip(s0.iter_mut()).zip(s1.iter_mut()) {
                let d = prep(g, *w);
                if let Some(f) = decay {
                    *w *= f;
                }
                *m = if lerp_low { *m + lerp_w * (d - *m) } else { d - (d - *m) * lerp_1mw };
                *v = *v * beta2 + one_m_beta2 * d * d;
                let denom = v.sqrt() / bc2_sqrt + eps;
                *w += neg_step * *m / denom;
            }
        }
        Kern::AdaDelta { neg_lr, rho, one_m_rho, eps } => {
            let (s0, s1) = (&mut s0[..n], &mut s1[..n]);
            for (((w, &g), v), u) in w.iter_mut().zip(g).zip(s0.iter_mut()).zip(s1.iter_mut()) {
                let d = prep(g, *w);
                *v = *v * rho + one_m_rho * d * d;
                let std = (*v + eps).sqrt();
                let delta = (*u + eps).sqrt() / std * d;
                *u = *u * rho + one_m_rho * delta * delta;
                *w += neg_lr * delta;
            }
        }
    }
}

/// Elements per task below which the update runs on one thread.
const PAR_CHUNK: usize = 1 << 16;

fn split<T>(s: &mut [T], mid: usize) -> (&mut [T], &mut [T]) {
    if s.len() >= mid {
        s.split_at_mut(mid)
    } else {
        (s, &mut [])
    }
}

/// Splits the work in halves across rayon threads, into at most `parts` pieces of more than
/// [`PAR_CHUNK`] elements.
fn run_par<T: Float>(k: &Kern<T>, prep: &Prep<T>, parts: usize, w: &mut [T], g: &[T], s0: &mut [T], s1: &mut [T]) {
    if parts <= 1 || w.len() <= PAR_CHUNK {
        run_chunk(k, prep, w, g, s0, s1);
        return;
    }
    let mid = w.len() / 2;
    let (wa, wb) = w.split_at_mut(mid);
    let (ga, gb) = g.split_at(mid);
    let (s0a, s0b) = split(s0, mid);
    let (s1a, s1b) = split(s1, mid);
    let pa = parts / 2;
    rayon::join(|| run_par(k, prep, pa, wa, ga, s0a, s1a), || run_par(k, prep, parts - pa, wb, gb, s0b, s1b));
}

/// One optimizer step on a parameter: `w` and every state buffer have `g`'s length; `t` is
/// the 1-based step count (for Adam bias correction; SGD's momentum buffer is set to `g` at
/// `t == 1`, like PyTorch's first step).
///
/// `state` must hold at least [`state_len`] buffers, zero-initialized before the first step.
/// Large parameters are split across rayon threads (elementwise, so the result is the same).
/// Errors ([`CoreError::Shape`]) on length mismatches, missing state or `t == 0`.
pub fn apply<T: Float>(rule: &SolverRule, prep: &GradPrep, t: u64, w: &mut [T], g: &[T], state: &mut [&mut [T]]) -> Result<()> {
    const OP: &str = "optim";
    let need = state_len(rule);
    if t == 0 {
        return Err(CoreError::Shape { op: OP, detail: "step count t is 1-based, got 0".into() });
    }
    if state.len() < need {
        return Err(CoreError::Shape {
            op: OP,
            detail: format!("{rule:?} needs {need} state buffers, got {}", state.len()),
        });
    }
    let n = w.len();
    if g.len() != n || state[..need].iter().any(|s| s.len() != n) {
        return Err(CoreError::Shape {
            op: OP,
            detail: format!(
                "parameter has {n} elements but gradient has {} and state buffers have {:?}",
                g.len(),
                state[..need].iter().map(|s| s.len()).collect::<Vec<_>>()
            ),
        });
    }
    let k = Kern::<T>::new(rule, t);
    let p = Prep::<T>::new(prep);
    let (s0, s1): (&mut [T], &mut [T]) = match &mut state[..need] {
        [] => (&mut [], &mut []),
        [a] => (&mut **a, &mut []),
        [a, b, ..] => (&mut **a, &mut **b),
    };
    let parts = crate::kernels::threads::num_threads();
    run_par(&k, &p, parts, w, g, s0, s1);
    Ok(())
}

/// `⟨a, b⟩` accumulated in f64 (over the common length), for the Barzilai–Borwein step size
/// `η = ⟨Δw, Δg⟩ / ‖Δg‖²`.
///
/// ```
/// assert_eq!(gorgon_core::kernels::optim::dot(&[1.0f32, 2.0], &[3.0, 4.0]), 11.0);
/// ```
pub fn dot<T: Float>(a: &[T], b: &[T]) -> f64 {
    // Four independent accumulators let the loop pipeline.
    let mut acc = [0.0f64; 4];
    let (ac, ar) = a.split_at(a.len().min(b.len()) / 4 * 4);
    let (bc, br) = b.split_at(ac.len());
    for (x, y) in ac.chunks_exact(4).zip(bc.chunks_exact(4)) {
        for ((s, &xi), &yi) in acc.iter_mut().zip(x).zip(y) {
            *s += xi.to_f64() * yi.to_f64();
        }
    }
    let mut tail = 0.0;
    for (x, y) in ar.iter().zip(br) {
        tail += x.to_f64() * y.to_f64();
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// `w −= η·g` (over the common length), with `η` converted to `T` — the Barzilai–Borwein
/// update once the global step size is known.
///
/// ```
/// let mut w = vec![1.0f64, 1.0];
/// gorgon_core::kernels::optim::axpy_update(&mut w, &[2.0, -2.0], 0.25);
/// assert_eq!(w, vec![0.5, 1.5]);
/// ```
pub fn axpy_update<T: Float>(w: &mut [T], g: &[T], eta: f64) {
    let e = T::from_f64(eta);
    for (w, &g) in w.iter_mut().zip(g) {
        *w = *w - e * g;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_lengths() {
        assert_eq!(state_len(&SolverRule::Sgd { lr: 0.1, momentum: 0.0, nesterov: false, dampening: 0.0 }), 0);
        assert_eq!(state_len(&SolverRule::Sgd { lr: 0.1, momentum: 0.5, nesterov: false, dampening: 0.0 }), 1);
        assert_eq!(state_len(&SolverRule::AdaGrad { lr: 0.1, eps: 0.0 }), 1);
        assert_eq!(state_len(&SolverRule::AdaDelta { lr: 1.0, rho: 0.9, eps: 1e-6 }), 2);
    }

    #[test]
    fn grad_prep_order() {
        // (10 / 4) = 2.5 → clip 1 → + 0.5·(−2) + 0.25·sign(−2) = 1 − 1 − 0.25
        let p = Prep::<f64>::new(&GradPrep { batch_size: 4.0, clip: Some(1.0), l1: 0.25, l2: 0.5 });
        assert_eq!(p.grad(10.0, -2.0), -0.25);
        assert_eq!(p.grad(-10.0, 0.0), -1.0);
        let p = Prep::<f32>::new(&GradPrep::default());
        assert_eq!(p.grad(3.0, 7.0), 3.0);
    }

    #[test]
    fn split_handles_empty_state() {
        let mut e: [f32; 0] = [];
        let (a, b) = split(&mut e, 5);
        assert!(a.is_empty() && b.is_empty());
        let mut v = [1, 2, 3];
        let (a, b) = split(&mut v, 1);
        assert_eq!((a.len(), b.len()), (1, 2));
    }
}

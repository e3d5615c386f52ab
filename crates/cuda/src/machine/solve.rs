//! Solver steps on the GPU: when a solver steps parameters whose gradients this machine
//! computed, the update kernels (`optim.cu`) change the machine's device copies of the
//! parameters in place, so weights never travel to the host and back between steps.
//!
//! The graph is told with [`Graph::mark_newer_on`] that this machine holds the newer value;
//! whoever reads the leaf next (`.value`, another machine's run, a host solver step, `close`
//! of this machine) fetches it through [`ResultSource::leaf_value`] /
//! [`gorgon_autodiff::vm::sync_leaves`]. Solver state (momentum buffers, Adam moments) stays
//! owned by the caller on the host: it is uploaded before the kernel and downloaded after,
//! so host state is always current (stateless SGD moves nothing).

use gorgon_autodiff::graph::{NodeId, ResultSource};
use gorgon_autodiff::solver::{Rule, StateBufs};
use gorgon_autodiff::vm::{read, write};
use gorgon_autodiff::{Error, Result};
use gorgon_core::kernels::optim::{GradPrep, SolverRule};
use gorgon_core::DType;
use std::sync::Weak;

use super::{dev_err, Inner, State};
use crate::device::CudaBuffer;
use crate::{Update, UpdateParams};

/// The device kernel and its parameters for one step `t` (1-based) of `rule`.
pub(super) fn update_of(rule: &SolverRule, prep: &GradPrep, t: u64) -> (Update, UpdateParams) {
    let mut p = UpdateParams {
        scale: 1.0 / prep.batch_size,
        clip: prep.clip.unwrap_or(0.0),
        l1: prep.l1,
        l2: prep.l2,
        step: t as i64,
        weight_decay: 0.0,
        ..UpdateParams::default()
    };
    let kind = match *rule {
        SolverRule::Sgd { lr, momentum, nesterov, dampening } => {
            p.lr = lr;
            p.momentum = momentum;
            p.dampening = dampening;
            p.nesterov = nesterov as i64;
            if momentum == 0.0 { Update::Sgd } else { Update::SgdMomentum }
        }
        SolverRule::AdaGrad { lr, eps } => {
            (p.lr, p.eps) = (lr, eps);
            Update::AdaGrad
        }
        SolverRule::RMSProp { lr, alpha, eps } => {
            (p.lr, p.alpha, p.eps) = (lr, alpha, eps);
            Update::RmsProp
        }
        SolverRule::Adam { lr, beta1, beta2, eps } => {
            (p.lr, p.beta1, p.beta2, p.eps) = (lr, beta1, beta2, eps);
            Update::Adam
        }
        SolverRule::AdamW { lr, beta1, beta2, eps, weight_decay } => {
            (p.lr, p.beta1, p.beta2, p.eps, p.weight_decay) = (lr, beta1, beta2, eps, weight_decay);
            Update::Adam
        }
        SolverRule::AdaDelta { lr, rho, eps } => {
            (p.lr, p.rho, p.eps) = (lr, rho, eps);
            Update::AdaDelta
        }
    };
    (kind, p)
}

/// One parameter's step inputs: its gradient's buffer index and its dtype.
struct Plan {
    param: NodeId,
    grad_buf: usize,
    dtype: DType,
}

impl Inner {
    /// Steps `params` on the device when every one of them is a float leaf whose device copy
    /// is current and whose gradient this machine computed in its last run; `None` (the host
    /// path runs) otherwise.
    pub(super) fn step_on_device(&self, rule: &Rule, prep: &GradPrep, t: u64, params: &[NodeId], states: &mut [StateBufs<'_>]) -> Option<Result<()>> {
        let Rule::Elementwise(rule) = rule else { return None };
        if params.is_empty() || states.len() != params.len() {
            return None;
        }
        let mut guard = match self.lock() {
            Ok(s) => s,
            Err(e) => return Some(Err(e)),
        };
        let st: &mut State = &mut guard;
        if st.closed || !st.computed || st.dev.is_none() {
            return None;
        }
        let plans = {
            let g = match read(&self.graph) {
                Ok(g) => g,
                Err(e) => return Some(Err(e)),
            };
            let mut plans = Vec::with_capacity(params.len());
            for &p in params {
                let node = g.try_node(p).ok()?;
                let sb = st.stored.get(&p)?;
                // A copy older than the graph's value (re-bound since the upload) steps on the host.
                if !node.dtype.is_float() || sb.version != Some(g.value_version(p)) {
                    return None;
                }
                let gid = *g.grad_of.get(&p)?;
                let grad_buf = *st.program.node_buf.get(&gid)?;
                plans.push(Plan { param: p, grad_buf, dtype: node.dtype });
            }
            plans
        };
        let same_dtype = |p: &Plan, s: &StateBufs<'_>| matches!((p.dtype, s), (DType::F32, StateBufs::F32(_)) | (DType::F64, StateBufs::F64(_)));
        if !plans.iter().zip(states.iter()).all(|(p, s)| same_dtype(p, s)) {
            return None;
        }
        let (kind, up) = update_of(rule, prep, t);
        Some(self.apply(st, &plans, kind, &up, states))
    }

    fn apply(&self, st: &mut State, plans: &[Plan], kind: Update, up: &UpdateParams, states: &mut [StateBufs<'_>]) -> Result<()> {
        let State { dev, bufs, stored, opt_state, .. } = st;
        let dev = dev.as_mut().ok_or_else(|| Error::Internal("cuda: device missing".into()))?;
        super::bind(dev)?;
        for (plan, host) in plans.iter().zip(states.iter_mut()) {
            let n_state = match host {
                StateBufs::F32(v) => v.len(),
                StateBufs::F64(v) => v.len(),
            };
            // The caller may keep more arrays than this kernel uses (SGD keeps a momentum
            // buffer even at momentum 0); the kernel's state is the leading ones.
            if n_state < kind.state_count() {
                return Err(Error::Internal(format!("solver step: {kind:?} keeps {} state arrays, got {n_state}", kind.state_count())));
            }
            let n_state = kind.state_count();
            let sb = stored.get_mut(&plan.param).ok_or_else(|| Error::Internal("cuda: parameter copy missing".into()))?;
            let shape = sb.buf.shape().to_vec();
            // Device scratch for the state, allocated once per parameter.
            let scratch = opt_state.entry(plan.param).or_default();
            if scratch.len() != n_state || scratch.iter().any(|b| b.shape() != shape.as_slice() || b.dtype() != plan.dtype) {
                scratch.clear();
                for _ in 0..n_state {
                    scratch.push(dev.alloc_uninit(plan.dtype, &shape).map_err(Error::from)?);
                }
            }
            upload_states(dev, host, scratch)?;
            let grad = bufs[plan.grad_buf].as_ref().ok_or_else(|| Error::Internal("cuda: gradient buffer missing".into()))?;
            dev.update(kind, up, &mut sb.buf, grad, scratch).map_err(Error::from)?;
            download_states(dev, scratch, host)?;
        }
        // The device copies are now newer than the graph's values.
        let me: Weak<dyn ResultSource> = self.me.clone();
        let mut g = write(&self.graph)?;
        for plan in plans {
            let v = g.mark_newer_on(plan.param, me.clone());
            if let Some(sb) = stored.get_mut(&plan.param) {
                sb.version = Some(v);
            }
        }
        Ok(())
    }
}

fn upload_states(dev: &mut crate::CudaDevice, host: &mut StateBufs<'_>, dst: &mut [CudaBuffer]) -> Result<()> {
    match host {
        StateBufs::F32(v) => v.iter().zip(dst.iter_mut()).try_for_each(|(h, d)| dev.upload_from::<f32>(h, d)),
        StateBufs::F64(v) => v.iter().zip(dst.iter_mut()).try_for_each(|(h, d)| dev.upload_from::<f64>(h, d)),
    }
    .map_err(dev_err)
}

fn download_states(dev: &mut crate::CudaDevice, src: &[CudaBuffer], host: &mut StateBufs<'_>) -> Result<()> {
    match host {
        StateBufs::F32(v) => v.iter_mut().zip(src).try_for_each(|(h, s)| dev.download_into::<f32>(s, h)),
        StateBufs::F64(v) => v.iter_mut().zip(src).try_for_each(|(h, s)| dev.download_into::<f64>(s, h)),
    }
    .map_err(dev_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_map_to_their_kernels() {
        let prep = GradPrep { batch_size: 4.0, clip: Some(2.0), l1: 0.1, l2: 0.2 };
        let (k, p) = update_of(&SolverRule::Sgd { lr: 0.5, momentum: 0.0, nesterov: false, dampening: 0.0 }, &prep, 3);
        assert_eq!(k, Update::Sgd);
        assert_eq!((p.lr, p.scale, p.clip, p.l1, p.l2, p.step), (0.5, 0.25, 2.0, 0.1, 0.2, 3));
        let (k, p) = update_of(&SolverRule::Sgd { lr: 0.5, momentum: 0.9, nesterov: true, dampening: 0.1 }, &GradPrep::default(), 1);
        assert_eq!((k, p.momentum, p.nesterov, p.dampening, p.clip), (Update::SgdMomentum, 0.9, 1, 0.1, 0.0));
        let (k, p) = update_of(&SolverRule::AdamW { lr: 1e-3, beta1: 0.8, beta2: 0.99, eps: 1e-7, weight_decay: 0.01 }, &GradPrep::default(), 2);
        assert_eq!((k, p.beta1, p.beta2, p.eps, p.weight_decay), (Update::Adam, 0.8, 0.99, 1e-7, 0.01));
        let (k, p) = update_of(&SolverRule::Adam { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8 }, &GradPrep::default(), 2);
        assert_eq!((k, p.weight_decay), (Update::Adam, 0.0));
        assert_eq!(update_of(&SolverRule::AdaGrad { lr: 0.1, eps: 1e-10 }, &GradPrep::default(), 1).0, Update::AdaGrad);
        assert_eq!(update_of(&SolverRule::RMSProp { lr: 0.1, alpha: 0.9, eps: 1e-8 }, &GradPrep::default(), 1).0, Update::RmsProp);
        assert_eq!(update_of(&SolverRule::AdaDelta { lr: 1.0, rho: 0.9, eps: 1e-6 }, &GradPrep::default(), 1).0, Update::AdaDelta);
    }
}

//! Solver steps: fused per-parameter updates (kernels in `gorgon_core::kernels::optim`)
//! applied to leaf values from the gradients of the last run. State buffers are owned by
//! the caller (the Python solver keeps them as NumPy arrays, so they can be saved).

use crate::error::{Error, Result};
use crate::graph::{Graph, NodeId};
use crate::vm::{write, SharedGraph};
use gorgon_core::kernels::optim::{self, GradPrep, SolverRule};
use gorgon_core::{Float, Tensor, TensorView};

/// A solver's update rule.
#[derive(Clone, Debug)]
pub enum Rule {
    /// A per-element rule (SGD, AdaGrad, RMSProp, Adam, AdamW, AdaDelta).
    Elementwise(SolverRule),
    /// Barzilai–Borwein: η = ⟨Δw,Δg⟩/‖Δg‖² over all parameters (first step uses `lr`).
    BarzilaiBorwein {
        /// Step size of the first step.
        lr: f64,
    },
}

/// Parameter elements from which a step runs on a rayon worker.
const POOL_MIN_ELEMS: usize = 1 << 16;

/// One parameter's state buffers, borrowed mutably from the caller.
pub enum StateBufs<'a> {
    /// float32 state.
    F32(Vec<&'a mut [f32]>),
    /// float64 state.
    F64(Vec<&'a mut [f64]>),
}

/// The gradient of parameter `p` from the last run. The machine is asked with the graph lock
/// released (lock order: machine state, then graph — `run_all` takes them in that order).
fn grad_copy(graph: &SharedGraph, p: NodeId) -> Result<Tensor> {
    {
        let g = crate::vm::read(graph)?;
        if !g.grad_of.contains_key(&p) {
            let n = g.node(p);
            return Err(Error::Graph(format!("solver step: parameter {} has no gradient; build it with gr.grad(cost, [...]) and run a machine first", n.describe(p))));
        }
    }
    match crate::vm::grad_node_value(graph, p)? {
        Some(t) => Ok(t),
        None => {
            let g = crate::vm::read(graph)?;
            Err(Error::Graph(format!("solver step: the gradient of parameter {} has not been computed; run the machine before step()", g.node(p).label(p))))
        }
    }
}

/// Applies one step to every parameter in `params` (leaves of `graph`).
pub fn step(graph: &SharedGraph, rule: &Rule, prep: &GradPrep, t: u64, params: &[NodeId], states: &mut [StateBufs<'_>]) -> Result<()> {
    if states.len() != params.len() {
        return Err(Error::Internal("solver step: one state list per parameter is required".into()));
    }
    // Where the values and gradients live on a device, the machine there steps them.
    let src = crate::vm::read(graph)?.result_source();
    if let Some(r) = src.and_then(|s| s.device_step(rule, prep, t, params, states)) {
        return r;
    }
    // The host path reads and writes the graph's values: fetch any newer device copies.
    crate::vm::sync_leaves(graph, Some(params), None)?;
    // Check every parameter before changing any.
    let mut total = 0usize;
    {
        let g = crate::vm::read(graph)?;
        for &p in params {
            let n = g.try_node(p)?;
            if !matches!(n.kind, crate::graph::NodeKind::Leaf) {
                return Err(Error::Graph(format!("solver step: {} is not a variable (leaf) node", n.label(p))));
            }
            match g.stored_value(p) {
                Some(v) => total += v.view().len(),
                None => return Err(Error::Graph(format!("solver step: parameter {} has no value", n.label(p)))),
            }
        }
    }
    match rule {
        // Large updates run on a rayon worker, so their kernels split work from inside the
        // pool (one thread hand-off per step instead of one per parameter).
        Rule::Elementwise(r) if total >= POOL_MIN_ELEMS && rayon::current_thread_index().is_none() => {
            rayon::scope(|_| elementwise(graph, r, prep, t, params, states))?
        }
        Rule::Elementwise(r) => elementwise(graph, r, prep, t, params, states)?,
        Rule::BarzilaiBorwein { lr } => {
            let grads: Vec<Tensor> = params.iter().map(|&p| grad_copy(graph, p)).collect::<Result<_>>()?;
            barzilai_borwein(&mut *write(graph)?, *lr, prep, t, params, &grads, states)?
        }
    }
    Ok(())
}

/// Per-element rules: each parameter is updated straight from the machine's gradient buffer
/// (visited under the machine's lock, then the graph's — the lock order of `run_all` — so
/// the gradients are never copied). Gradients the machine does not hold (stored values) are
/// copied first, before any parameter changes, as before.
fn elementwise(graph: &SharedGraph, r: &SolverRule, prep: &GradPrep, t: u64, params: &[NodeId], states: &mut [StateBufs<'_>]) -> Result<()> {
    let src = crate::vm::read(graph)?.result_source();
    let mut copies: Vec<Option<Tensor>> = Vec::with_capacity(params.len());
    let mut gids = Vec::with_capacity(params.len());
    for &p in params {
        let gid = crate::vm::read(graph)?.grad_of.get(&p).copied();
        let held = match (gid, &src) {
            (Some(gid), Some(s)) => s.visit(gid, &mut |_| Ok(())).is_some(),
            _ => false,
        };
        copies.push(if held { None } else { Some(grad_copy(graph, p)?) });
        gids.push(gid);
    }
    for (((&p, st), copy), gid) in params.iter().zip(states.iter_mut()).zip(&copies).zip(gids) {
        let mut update = |grad: &TensorView<'_>| -> Result<()> {
            let mut g = write(graph)?;
            let label = g.node(p).label(p);
            let w = g.stored_value_mut(p).ok_or_else(|| Error::Graph(format!("solver step: parameter {label} has no value")))?;
            apply_one(&label, r, prep, t, w, grad, st)
        };
        match (copy, gid, &src) {
            (Some(c), _, _) => update(&c.view())?,
            (None, Some(gid), Some(s)) => match s.visit(gid, &mut update) {
                Some(res) => res?,
                None => return Err(Error::Graph("solver step: the machine's results changed during the step".into())),
            },
            _ => return Err(Error::Internal("solver step: gradient source lost".into())),
        }
    }
    Ok(())
}

fn typed<'w, 'g, T: Float>(label: &str, w: &'w mut Tensor, grad: &TensorView<'g>) -> Result<(&'w mut [T], &'g [T])> {
    let wd = w.dtype();
    let w = T::tensor_mut(w).and_then(|a| a.as_slice_mut());
    let gv = T::view_ref(grad);
    match (w, gv) {
        (Some(w), Some(gv)) => {
            let gs = gv.to_slice().ok_or_else(|| Error::Internal(format!("gradient of {label} is not contiguous")))?;
            if gs.len() != w.len() {
                return Err(Error::Shape(format!("solver step: gradient of {label} has {} elements, parameter has {}", gs.len(), w.len())));
            }
            Ok((w, gs))
        }
        _ => Err(Error::DType(format!("solver step: parameter {label} ({wd}) and its gradient differ in dtype, or it is not float"))),
    }
}

fn apply_one(label: &str, r: &SolverRule, prep: &GradPrep, t: u64, w: &mut Tensor, grad: &TensorView, st: &mut StateBufs) -> Result<()> {
    let need = optim::state_len(r);
    let n = w.len();
    let check = |lens: Vec<usize>| -> Result<()> {
        if lens.len() < need || lens.iter().any(|&l| l != n) {
            return Err(Error::Shape(format!("solver step: parameter {label} needs {need} state buffers of {n} elements, got {lens:?}")));
        }
        Ok(())
    };
    match st {
        StateBufs::F32(s) => {
            check(s.iter().map(|b| b.len()).collect())?;
            let (w, g) = typed::<f32>(label, w, grad)?;
            let mut refs: Vec<&mut [f32]> = s.iter_mut().map(|b| &mut **b).collect();
            optim::apply(r, prep, t, w, g, &mut refs)?;
        }
        StateBufs::F64(s) => {
            check(s.iter().map(|b| b.len()).collect())?;
            let (w, g) = typed::<f64>(label, w, grad)?;
            let mut refs: Vec<&mut [f64]> = s.iter_mut().map(|b| &mut **b).collect();
            optim::apply(r, prep, t, w, g, &mut refs)?;
        }
    }
    Ok(())
}

/// Gradient preprocessing in f64 (used by Barzilai–Borwein, which needs all parameters).
fn prep_grad(prep: &GradPrep, w: f64, g: f64) -> f64 {
    let mut g = g / prep.batch_size;
    if let Some(c) = prep.clip {
        g = g.clamp(-c, c);
    }
    let sign = if w > 0.0 { 1.0 } else if w < 0.0 { -1.0 } else { 0.0 };
    g + prep.l2 * w + prep.l1 * sign
}

fn barzilai_borwein(g: &mut Graph, lr: f64, prep: &GradPrep, t: u64, params: &[NodeId], grads: &[Tensor], states: &mut [StateBufs<'_>]) -> Result<()> {
    // Work in f64 element lists; write back in the parameter's dtype.
    let mut ws: Vec<Vec<f64>> = Vec::new();
    let mut gs: Vec<Vec<f64>> = Vec::new();
    for (&p, grad) in params.iter().zip(grads) {
        let w = g.stored_value(p).expect("checked").view().to_owned().to_vec_f64();
        let gr = grad.to_vec_f64();
        if gr.len() != w.len() {
            return Err(Error::Shape(format!("solver step: gradient of {} has the wrong size", g.node(p).label(p))));
        }
        gs.push(w.iter().zip(&gr).map(|(&wi, &gi)| prep_grad(prep, wi, gi)).collect());
        ws.push(w);
    }
    let prev = |st: &StateBufs, k: usize| -> Vec<f64> {
        match st {
            StateBufs::F32(s) => s.get(k).map(|b| b.iter().map(|&v| v as f64).collect()).unwrap_or_default(),
            StateBufs::F64(s) => s.get(k).map(|b| b.to_vec()).unwrap_or_default(),
        }
    };
    let eta = if t <= 1 {
        lr
    } else {
        let (mut num, mut den) = (0.0, 0.0);
        for (i, st) in states.iter().enumerate() {
            let (pw, pg) = (prev(st, 0), prev(st, 1));
            if pw.len() != ws[i].len() || pg.len() != ws[i].len() {
                return Err(Error::Shape("solver step: Barzilai–Borwein needs 2 state buffers per parameter".into()));
            }
            for j in 0..ws[i].len() {
                let dw = ws[i][j] - pw[j];
                let dg = gs[i][j] - pg[j];
                num += dw * dg;
                den += dg * dg;
            }
        }
        if den > 0.0 && num.is_finite() { num / den } else { lr }
    };
    for (i, (&p, st)) in params.iter().zip(states.iter_mut()).enumerate() {
        let new: Vec<f64> = ws[i].iter().zip(&gs[i]).map(|(&w, &gg)| w - eta * gg).collect();
        match st {
            StateBufs::F32(s) if s.len() >= 2 => {
                s[0].iter_mut().zip(&ws[i]).for_each(|(d, &v)| *d = v as f32);
                s[1].iter_mut().zip(&gs[i]).for_each(|(d, &v)| *d = v as f32);
            }
            StateBufs::F64(s) if s.len() >= 2 => {
                s[0].copy_from_slice(&ws[i]);
                s[1].copy_from_slice(&gs[i]);
            }
            _ => return Err(Error::Shape("solver step: Barzilai–Borwein needs 2 state buffers per parameter".into())),
        }
        let w = g.stored_value_mut(p).expect("checked");
        match w {
            Tensor::F32(a) => a.iter_mut().zip(&new).for_each(|(d, &v)| *d = v as f32),
            Tensor::F64(a) => a.iter_mut().zip(&new).for_each(|(d, &v)| *d = v),
            _ => return Err(Error::DType("solver step: parameters must be float".into())),
        }
    }
    Ok(())
}

//! The tape VM's instruction loop: each instruction's operands are looked up (program
//! buffers, or stored leaf/constant values), small elementwise instructions take the fast
//! path of [`crate::smallops`], the others run through [`Op::forward`](crate::op::Op::forward)
//! with their operand views on the stack (no allocation per instruction); `nan_guard` and
//! `trace` are applied per instruction. The machines and their locking live in
//! [`crate::vm`]; this module takes no locks.

use crate::compile::{Program, Slot};
use crate::error::Result;
use crate::graph::{Graph, Value};
use crate::smallops::{self, SmallOp};
use crate::vm::MachineOptions;
use gorgon_core::{Tensor, TensorView};
use std::time::Instant;

fn has_nonfinite(t: &Tensor) -> bool {
    match t {
        Tensor::F32(a) => a.iter().any(|v| !v.is_finite()),
        Tensor::F64(a) => a.iter().any(|v| !v.is_finite()),
        _ => false,
    }
}

/// Which instructions may take the small-operand fast path (decided once, from the compiled
/// dtypes and shapes; operands are checked for contiguity when they run).
pub(crate) fn classify_small(g: &Graph, program: &Program) -> Vec<Option<SmallOp>> {
    program
        .instrs
        .iter()
        .map(|ins| {
            let operands: Vec<(gorgon_core::DType, &[usize])> = ins
                .inputs
                .iter()
                .map(|s| match *s {
                    Slot::Buf(b) => (program.buffers[b].dtype, program.buffers[b].shape.as_slice()),
                    Slot::Stored(n) => (g.node(n).dtype, g.node(n).shape.as_slice()),
                })
                .collect();
            let out = &program.buffers[ins.out];
            smallops::classify(&ins.op, &operands, (out.dtype, &out.shape))
        })
        .collect()
}

/// A view of an operand.
fn operand_view<'a>(g: &'a Graph, buffers: *const Tensor, s: Slot) -> TensorView<'a> {
    match s {
        // SAFETY: see `execute`: `b` is in bounds and not the instruction's output buffer.
        Slot::Buf(b) => unsafe { (*buffers.add(b)).view() },
        Slot::Stored(n) => g.stored_value(n).expect("checked before the run").view(),
    }
}

/// An operand as the fast path reads it (no view construction for tensors held directly).
fn operand_small<'a>(g: &'a Graph, buffers: *const Tensor, s: Slot) -> smallops::Operand<'a> {
    match s {
        // SAFETY: as in `operand_view`.
        Slot::Buf(b) => smallops::Operand::Tensor(unsafe { &*buffers.add(b) }),
        Slot::Stored(n) => match g.stored_value(n).expect("checked before the run") {
            Value::Owned(t) => smallops::Operand::Tensor(t),
            v @ Value::External(_) => smallops::Operand::View(v.view()),
        },
    }
}

/// Runs one instruction through `Op::forward`, with its operand views on the stack.
fn forward_general(g: &Graph, buffers: *const Tensor, ins: &crate::compile::Instr, out: &mut Tensor) -> Result<()> {
    let v = |k: usize| operand_view(g, buffers, ins.inputs[k]);
    match ins.inputs.len() {
        0 => ins.op.forward(&[], out),
        1 => ins.op.forward(&[v(0)], out),
        2 => ins.op.forward(&[v(0), v(1)], out),
        3 => ins.op.forward(&[v(0), v(1), v(2)], out),
        n => {
            let views: Vec<TensorView> = (0..n).map(v).collect();
            ins.op.forward(&views, out)
        }
    }
}

/// Output elements from which a program counts as big enough to run on a pool worker.
const POOL_MIN_ELEMS: usize = 1 << 16;

/// Whether a run should move onto a rayon worker (see [`execute`]): the pool has several
/// threads, the caller is not one of them, and some instruction off the small fast path
/// writes at least [`POOL_MIN_ELEMS`] elements (tiny programs stay on the caller: the hop
/// costs a thread wake-up). Programs with custom ops stay on the caller too: their callbacks
/// report errors through the calling thread's state (the Python bridge parks exceptions in a
/// thread-local).
fn run_on_pool(program: &Program, small: &[Option<SmallOp>], buffers: &[Tensor]) -> bool {
    rayon::current_thread_index().is_none()
        && gorgon_core::kernels::threads::num_threads() > 1
        && !program.instrs.iter().any(|ins| matches!(ins.op, crate::op::Op::Custom(_) | crate::op::Op::CustomGrad { .. }))
        && program.instrs.iter().zip(small).any(|(ins, s)| s.is_none() && buffers.get(ins.out).is_some_and(|b| b.len() >= POOL_MIN_ELEMS))
}

/// Runs every instruction of `program` once over `buffers` (the trace goes to `trace_log`
/// when `opts.trace` is on).
///
/// A program with large instructions runs on one of rayon's workers, the caller waiting once
/// for the whole run: its kernels then split work from inside the pool, where the other
/// workers pick it up from their spin loop, instead of every parallel kernel handing its
/// work from the caller's thread to the pool and sleeping until it is done (two thread
/// wake-ups per kernel). The instructions, their order and every kernel are the same.
pub(crate) fn execute(g: &Graph, opts: &MachineOptions, program: &Program, small: &[Option<SmallOp>], buffers: &mut [Tensor], trace_log: &mut Vec<String>) -> Result<()> {
    if run_on_pool(program, small, buffers) {
        rayon::scope(|_| execute_here(g, opts, program, small, buffers, trace_log))
    } else {
        execute_here(g, opts, program, small, buffers, trace_log)
    }
}

/// [`execute`] on the calling thread.
fn execute_here(g: &Graph, opts: &MachineOptions, program: &Program, small: &[Option<SmallOp>], buffers: &mut [Tensor], trace_log: &mut Vec<String>) -> Result<()> {
    if !trace_log.is_empty() {
        trace_log.clear();
    }
    for (i, ins) in program.instrs.iter().enumerate() {
        let t0 = if opts.trace { Some(Instant::now()) } else { None };
        // The compiler never gives an instruction an output buffer that one of its operands
        // occupies (outputs are assigned before operands are freed), so the output can be
        // borrowed mutably beside shared borrows of the operand buffers.
        debug_assert!(!ins.inputs.contains(&Slot::Buf(ins.out)));
        let (result, bad) = {
            let base = buffers.as_mut_ptr();
            // SAFETY: `ins.out` is in bounds and distinct from every `Slot::Buf` operand (see
            // above), so this is the only live reference to that element while the operand
            // views borrow the others; the slice is not resized during the borrow.
            let out: &mut Tensor = unsafe { &mut *base.add(ins.out) };
            let done = match small[i] {
                Some(op) => match *ins.inputs.as_slice() {
                    [a] => smallops::run(op, &[operand_small(g, base, a)], out),
                    [a, b] => smallops::run(op, &[operand_small(g, base, a), operand_small(g, base, b)], out),
                    _ => false,
                },
                None => false,
            };
            let r = if done { Ok(()) } else { forward_general(g, base, ins, out) };
            let bad = opts.nan_guard && r.is_ok() && has_nonfinite(out);
            (r, bad)
        };
        if let Err(e) = result {
            return Err(e.context(crate::vm::running_context(g, ins.node, &ins.op.name(), "")));
        }
        if bad {
            return Err(crate::vm::nan_guard_error(g, ins.node, &ins.op.name()));
        }
        if let Some(t0) = t0 {
            trace_log.push(format!("[{i}] {} {} {:.1} µs", ins.op.name(), program.labels.get(&ins.node).cloned().unwrap_or_default(), t0.elapsed().as_secs_f64() * 1e6));
        }
    }
    Ok(())
}

"""The minibatch training loop shared by the digits examples (``mlp_digits.py``,
``convnet_digits.py``).

Like ``_common``, this is a helper of the examples, not part of the gorgon_rs API.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
import numpy.typing as npt

import gorgon_rs as gr
from _common import Progress, accuracy, batches, copy_values


def train_epochs(
    g: gr.Graph, g_eval: gr.Graph, *, X: gr.Node, y: gr.Node, loss: gr.Node, params: list[gr.Node],
    solver: gr.solvers.Solver, X_train: npt.NDArray[Any], y_train: npt.NDArray[np.int64], batch_size: int,
    logits_eval: gr.Node, y_test: npt.NDArray[np.int64], eval_nodes: Sequence[gr.Node],
    train_nodes: Sequence[gr.Node], epochs: int, steps: Optional[int],
) -> float:
    """Trains ``params`` on shuffled minibatches and evaluates after every epoch; returns the
    last test accuracy.

    Each step binds a batch of ``X_train``/``y_train`` to ``X``/``y``, runs the training graph
    ``g`` and lets ``solver`` update ``params``. After each epoch the values of ``train_nodes``
    are copied into ``eval_nodes`` (the same model in ``g_eval``, matched by name), the
    evaluation graph is run, and the epoch's mean loss and test accuracy (``logits_eval``
    against ``y_test``) are printed. ``steps`` (if given) stops the training after that many
    steps in all.
    """
    rng = np.random.default_rng(0)
    steps_left = steps
    acc = 0.0
    with gr.TapeMachine(g) as m, gr.TapeMachine(g_eval) as m_eval:
        for epoch in range(1, epochs + 1):
            nb = len(X_train) // batch_size if steps_left is None else min(len(X_train) // batch_size, steps_left)
            bar = Progress(nb, f"epoch {epoch}")
            losses: list[float] = []
            for idx in batches(len(X_train), batch_size, rng):
                if len(losses) == nb:
                    break
                X.let(X_train[idx])
                y.let(y_train[idx])
                m.run_all()
                solver.step(params)
                losses.append(float(loss.value))
                m.reset()
                bar.update(1, loss=losses[-1])
            bar.close()
            copy_values(eval_nodes, train_nodes)
            m_eval.run_all()
            acc = accuracy(logits_eval.value, y_test)
            m_eval.reset()
            print(f"epoch {epoch:2d}  loss {np.mean(losses):.4f}  test acc {acc:.3f}", flush=True)
            if steps_left is not None:
                steps_left -= len(losses)
                if steps_left <= 0:
                    break
    return acc

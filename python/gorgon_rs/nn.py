"""Neural-network helpers: ``gr.nn`` (functions and layers that own their parameters).

This module owns the composite NN functions of API.md (conv2d with bias, pooling, dropout,
batch norm, linear, the losses) and the layer classes (Linear, Conv2d, BatchNorm2d, LSTMCell).
Everything here is built from the public ``gr`` ops and the native primitives ``conv2d``,
``max_pool2d``, ``avg_pool2d`` and ``dropout_mask`` (through ``graph._apply``); it must not run
graphs or touch values, except to check the range of constant class labels. Arguments are
validated when a node is built and errors name the function or layer and the shapes.

Layers name their parameters ``<kind><k>.<param>`` (``linear0.weight``, ``conv1.bias``,
``batchnorm0.running_mean``...), counting per graph and per kind in creation order, so the same
model built in a fresh graph has the same names and ``gr.save``/``gr.load`` by name work.
Give ``name="encoder"`` to choose the prefix yourself.

The functions live in ``_nn_functional``, the layers in ``_nn_modules`` and their shared checks
in ``_nn_common`` (package-private modules); this module re-exports them.

Example:
    >>> import gorgon_rs as gr
    >>> g = gr.Graph()
    >>> x = g.matrix(gr.float32, (32, 64), name="x")
    >>> fc1, fc2 = gr.nn.Linear(g, 64, 128), gr.nn.Linear(g, 128, 10)
    >>> logits = fc2(gr.relu(fc1(x)))
    >>> y = g.vector(gr.int64, 32, name="y")
    >>> loss = gr.nn.cross_entropy(logits, y)
    >>> params = fc1.parameters() + fc2.parameters()
    >>> grads = gr.grad(loss, params)
"""

from __future__ import annotations

from ._nn_common import IntOrPair as IntOrPair
from ._nn_functional import (avg_pool2d, batch_norm, binary_cross_entropy, conv2d, cross_entropy, dropout, linear,
                             max_pool2d, mse_loss)
from ._nn_modules import BatchNorm2d, Conv2d, LSTMCell, Linear, Module

__all__ = [
    "conv2d",
    "max_pool2d",
    "avg_pool2d",
    "dropout",
    "batch_norm",
    "linear",
    "cross_entropy",
    "binary_cross_entropy",
    "mse_loss",
    "Module",
    "Linear",
    "Conv2d",
    "BatchNorm2d",
    "LSTMCell",
]

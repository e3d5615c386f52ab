"""gr.init: fans, bounds and statistics of each initializer, dtypes, and gr.seed reproducibility."""

from __future__ import annotations

import math

import numpy as np
import pytest

import gorgon_rs as gr

SHAPE_2D = (300, 500)          # fan_in 300, fan_out 500; 150,000 draws
SHAPE_4D = (64, 32, 3, 3)      # fan_in 288, fan_out 576; 18,432 draws


@pytest.mark.parametrize("shape,expected", [
    ((), (1, 1)), ((7,), (7, 7)), ((784, 128), (784, 128)), ((16, 3, 5, 5), (75, 400)),
    ((8, 4, 3), (12, 24)), ((64, 32, 3, 3), (288, 576)),
])
def test_fans(shape, expected):
    assert gr.init.fans(shape) == expected


@pytest.mark.parametrize("dtype", [np.float32, np.float64, "float32", gr.float64])
def test_shape_and_dtype(dtype):
    for f in (gr.init.zeros(), gr.init.ones(), gr.init.constant(2.5), gr.init.uniform(-1, 1),
              gr.init.gaussian(), gr.init.glorot_uniform(), gr.init.glorot_normal(), gr.init.he_uniform(),
              gr.init.he_normal()):
        a = f((4, 5), dtype)
        assert isinstance(a, np.ndarray)
        assert a.shape == (4, 5)
        assert a.dtype == np.dtype(gr.init._np_dtype(dtype))
        assert a.flags.c_contiguous
    assert gr.init.he_normal()((), "float64").shape == ()


def test_constants():
    np.testing.assert_array_equal(gr.init.zeros()((2, 3), np.float32), np.zeros((2, 3), np.float32))
    np.testing.assert_array_equal(gr.init.ones()((3,), np.float64), np.ones(3))
    np.testing.assert_array_equal(gr.init.constant(0.25)((2, 2), np.float64), np.full((2, 2), 0.25))
    np.testing.assert_array_equal(gr.init.zeros()((3,), np.int64), np.zeros(3, np.int64))


def _check_uniform(a, bound):
    assert np.abs(a).max() <= bound
    assert np.abs(a).max() > 0.99 * bound
    assert abs(a.mean()) < 0.02 * bound
    np.testing.assert_allclose(a.std(), bound / math.sqrt(3), rtol=0.02)


def _check_normal(a, std, mean=0.0):
    assert abs(a.mean() - mean) < 0.04 * std + 1e-12
    np.testing.assert_allclose(a.std(), std, rtol=0.02)
    # about 4.55% of normal draws lie beyond 2 std
    frac = float((np.abs(a - mean) > 2 * std).mean())
    assert 0.035 < frac < 0.056


def test_uniform_and_gaussian():
    gr.seed(1)
    a = gr.init.uniform(-0.3, 0.7)(SHAPE_2D, np.float64)
    assert a.min() >= -0.3 and a.max() <= 0.7
    np.testing.assert_allclose(a.mean(), 0.2, atol=0.005)
    np.testing.assert_allclose(a.std(), 1.0 / math.sqrt(12), rtol=0.02)
    _check_normal(gr.init.gaussian(1.5, 0.2)(SHAPE_2D, np.float64), 0.2, mean=1.5)
    _check_normal(gr.init.gaussian()(SHAPE_2D, np.float32).astype(np.float64), 1.0)


@pytest.mark.parametrize("gain", [1.0, 2.0])
@pytest.mark.parametrize("shape", [SHAPE_2D, SHAPE_4D])
def test_glorot(shape, gain):
    gr.seed(2)
    fi, fo = gr.init.fans(shape)
    std = gain * math.sqrt(2.0 / (fi + fo))
    _check_uniform(gr.init.glorot_uniform(gain)(shape, np.float64), math.sqrt(3) * std)
    _check_normal(gr.init.glorot_normal(gain)(shape, np.float64), std)


@pytest.mark.parametrize("gain", [1.0, 0.5])
@pytest.mark.parametrize("shape", [SHAPE_2D, SHAPE_4D])
def test_he(shape, gain):
    gr.seed(3)
    fi, _ = gr.init.fans(shape)
    std = gain * math.sqrt(2.0 / fi)
    _check_uniform(gr.init.he_uniform(gain)(shape, np.float64), math.sqrt(3) * std)
    _check_normal(gr.init.he_normal(gain)(shape, np.float64), std)


def test_api_fan_convention_for_linear_and_conv():
    # (in, out) = (784, 128): He bound uses fan_in = 784, not 128
    gr.seed(0)
    w = gr.init.he_uniform()((784, 128), np.float64)
    assert np.abs(w).max() <= math.sqrt(6 / 784)
    assert np.abs(w).max() > 0.95 * math.sqrt(6 / 784)
    # OIHW (16, 3, 5, 5): fan_in = 75
    k = gr.init.he_uniform()((16, 3, 5, 5), np.float64)
    assert np.abs(k).max() <= math.sqrt(6 / 75)


def test_random_initializers_reject_int_dtypes():
    for f in (gr.init.uniform(0, 1), gr.init.gaussian(), gr.init.glorot_uniform(), gr.init.he_normal()):
        with pytest.raises(gr.DTypeError):
            f((2, 2), np.int64)


@pytest.mark.parametrize("make", [lambda: gr.init.uniform(1.0, 0.0), lambda: gr.init.gaussian(0.0, -1.0),
                                  lambda: gr.init.glorot_uniform(gain=-1.0), lambda: gr.init.he_normal(float("nan")),
                                  lambda: gr.init.uniform(0, float("inf"))])
def test_invalid_arguments(make):
    with pytest.raises(ValueError):
        make()


def test_invalid_shape():
    with pytest.raises(ValueError):
        gr.init.zeros()((2, -1), np.float32)


def test_repr():
    assert repr(gr.init.glorot_uniform()) == "glorot_uniform(gain=1.0)"
    assert "uniform" in repr(gr.init.uniform(-1, 1))


def test_seed_reproducible_initializers():
    def weights():
        g = gr.Graph()
        W = g.matrix(gr.float32, (20, 10), name="W", init=gr.init.glorot_uniform())
        K = g.tensor(gr.float64, (4, 3, 3, 3), name="K", init=gr.init.he_normal())
        return W.value, K.value

    gr.seed(123)
    a = weights()
    gr.seed(123)
    b = weights()
    gr.seed(124)
    c = weights()
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_seed_reproducible_layers_and_dropout():
    def run():
        g = gr.Graph()
        fc = gr.nn.Linear(g, 8, 6)
        x = g.matrix(gr.float32, (4, 8), name="x")
        y = gr.nn.dropout(fc(x), 0.5)
        x.let(np.ones((4, 8), np.float32))
        with gr.TapeMachine(g) as m:
            m.run_all()
            first = y.value
            m.reset()
            m.run_all()
            second = y.value
        return fc.weight.value, first, second

    gr.seed(7)
    w1, a1, b1 = run()
    gr.seed(7)
    w2, a2, b2 = run()
    np.testing.assert_array_equal(w1, w2)
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_array_equal(b1, b2)
    assert not np.array_equal(a1 == 0, b1 == 0), "each run must draw a fresh mask"


def test_init_module_seed_and_rng():
    gr.init.seed(5)
    a = gr.init.rng().standard_normal(3)
    gr.init.seed(5)
    b = gr.init.rng().standard_normal(3)
    np.testing.assert_array_equal(a, b)
    gr.init._reseed(9)
    x = gr.init.uniform()((3,), "float64")
    gr.init._reseed(9)
    np.testing.assert_array_equal(x, gr.init.uniform()((3,), "float64"))
    with pytest.raises(ValueError):
        gr.init.seed(-1)


def test_float32_and_float64_draws_agree():
    gr.seed(11)
    a = gr.init.glorot_normal()((5, 7), np.float64)
    gr.seed(11)
    b = gr.init.glorot_normal()((5, 7), np.float32)
    np.testing.assert_allclose(b, a.astype(np.float32))

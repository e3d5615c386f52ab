"""gr.save / gr.load (safetensors): round trips, all-or-nothing loading, corrupt and hostile
files, missing files, and crash safety of the write (a process killed mid-save leaves the old
file intact). Also gr.plot_history."""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import gorgon_rs as gr


def make_nodes(g=None):
    g = g or gr.Graph()
    rng = np.random.default_rng(0)
    W = g.matrix(gr.float32, (3, 2), name="W")
    W.let(rng.normal(size=(3, 2)).astype(np.float32))
    b = g.vector(gr.float64, 4, name="b")
    b.let(rng.normal(size=4))
    k = g.vector(gr.int64, 3, name="k")
    k.let(np.array([1, -2, 3]))
    s = g.scalar(gr.float32, name="s")
    s.let(2.5)
    return g, [W, b, k, s]


def values(nodes):
    return [np.array(n.value) for n in nodes]


def assert_values(nodes, expected):
    for n, e in zip(nodes, expected, strict=True):
        assert n.value.dtype == e.dtype
        np.testing.assert_array_equal(n.value, e)


def write_raw(path, header, data=b"", length=None):
    h = header if isinstance(header, bytes) else json.dumps(header).encode()
    n = len(h) if length is None else length
    path.write_bytes(struct.pack("<Q", n) + h + data)


# ---------------------------------------------------------------------------------------------
# round trips
# ---------------------------------------------------------------------------------------------


def test_round_trip_list(tmp_path):
    path = tmp_path / "m.safetensors"
    _, nodes = make_nodes()
    saved = values(nodes)
    gr.save(path, nodes)
    _, fresh = make_nodes()
    for n in fresh:
        n.let(np.zeros(n.shape, dtype=n.value.dtype))
    gr.load(path, fresh)
    assert_values(fresh, saved)
    raw = gr.load(path)
    assert sorted(raw) == ["W", "b", "k", "s"]
    np.testing.assert_array_equal(raw["W"], saved[0])
    assert raw["s"].shape == ()


def test_round_trip_dict_and_arrays(tmp_path):
    path = tmp_path / "d.safetensors"
    _, (W, b, k, s) = make_nodes()
    state = {"weights/W": W, "m": np.arange(6.0).reshape(2, 3), "t": np.array(7, np.int64),
             "flag": np.array([True, False])}
    gr.save(str(path), state)
    raw = gr.load(path)
    np.testing.assert_array_equal(raw["weights/W"], W.value)
    np.testing.assert_array_equal(raw["m"], state["m"])
    assert raw["t"].dtype == np.int64 and int(raw["t"]) == 7
    np.testing.assert_array_equal(raw["flag"], state["flag"])
    # load into plain arrays, in place
    target = {"m": np.zeros((2, 3)), "t": np.zeros((), np.int64)}
    gr.load(path, target)
    np.testing.assert_array_equal(target["m"], state["m"])
    assert int(target["t"]) == 7


def test_save_replaces_existing_file_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "w.safetensors"
    gr.save(path, {"a": np.zeros(3)})
    gr.save(path, {"a": np.ones(5)})
    np.testing.assert_array_equal(gr.load(path)["a"], np.ones(5))
    assert os.listdir(tmp_path) == ["w.safetensors"]


def test_save_name_errors(tmp_path):
    g = gr.Graph()
    a = g.vector(gr.float32, 2, name="same", init=gr.init.zeros())
    b = g.vector(gr.float32, 2, name="same", init=gr.init.ones())
    c = g.vector(gr.float32, 2, init=gr.init.ones())
    with pytest.raises(ValueError, match="same"):
        gr.save(tmp_path / "x.safetensors", [a, b])
    with pytest.raises(ValueError, match="name"):
        gr.save(tmp_path / "x.safetensors", [a, c])
    with pytest.raises(TypeError):
        gr.save(tmp_path / "x.safetensors", [np.zeros(2)])
    assert not (tmp_path / "x.safetensors").exists()


def test_load_strict_rejects_unexpected(tmp_path):
    path = tmp_path / "m.safetensors"
    _, nodes = make_nodes()
    gr.save(path, nodes)
    _, fresh = make_nodes()
    gr.load(path, fresh[:2])                         # extra tensors are fine by default
    with pytest.raises(gr.FormatError, match="unexpected"):
        gr.load(path, fresh[:2], strict=True)


# ---------------------------------------------------------------------------------------------
# failures change nothing
# ---------------------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    _, nodes = make_nodes()
    with pytest.raises(FileNotFoundError):
        gr.load(tmp_path / "nope.safetensors", nodes)
    with pytest.raises(FileNotFoundError):
        gr.load(tmp_path / "nope.safetensors")


def test_shape_mismatch_names_key_and_changes_nothing(tmp_path):
    path = tmp_path / "m.safetensors"
    _, nodes = make_nodes()
    gr.save(path, nodes)
    g = gr.Graph()
    b = g.vector(gr.float64, 4, name="b", init=gr.init.zeros())        # valid, comes first
    W = g.matrix(gr.float32, (2, 3), name="W", init=gr.init.zeros())   # wrong shape
    before = values([b, W])
    with pytest.raises(gr.FormatError, match=r"'W'.*\(3, 2\).*\(2, 3\)"):
        gr.load(path, [b, W])
    assert_values([b, W], before)


def test_dtype_mismatch(tmp_path):
    path = tmp_path / "m.safetensors"
    _, nodes = make_nodes()
    gr.save(path, nodes)
    g = gr.Graph()
    b = g.vector(gr.float32, 4, name="b", init=gr.init.zeros())
    with pytest.raises(gr.FormatError, match=r"'b'.*float64.*float32"):
        gr.load(path, [b])
    np.testing.assert_array_equal(b.value, np.zeros(4, np.float32))


def test_missing_key_changes_nothing(tmp_path):
    path = tmp_path / "m.safetensors"
    _, nodes = make_nodes()
    gr.save(path, nodes[:2])
    _, fresh = make_nodes()
    for n in fresh:
        n.let(np.zeros(n.shape, dtype=n.value.dtype))
    before = values(fresh)
    with pytest.raises(gr.FormatError, match="'k'"):
        gr.load(path, fresh)
    assert_values(fresh, before)


def test_load_into_array_shape_mismatch(tmp_path):
    path = tmp_path / "a.safetensors"
    gr.save(path, {"x": np.ones(3), "y": np.ones(2)})
    tx, ty = np.zeros(3), np.zeros(4)
    with pytest.raises(gr.FormatError, match="'y'"):
        gr.load(path, {"x": tx, "y": ty})
    np.testing.assert_array_equal(tx, np.zeros(3))


def _valid_file(tmp_path):
    path = tmp_path / "good.safetensors"
    _, nodes = make_nodes()
    gr.save(path, nodes)
    _, fresh = make_nodes()
    for n in fresh:
        n.let(np.full(n.shape, 9, dtype=n.value.dtype))
    return path, path.read_bytes(), fresh, values(fresh)


def test_truncated_files_raise_format_error_and_change_nothing(tmp_path):
    path, blob, fresh, before = _valid_file(tmp_path)
    bad = tmp_path / "bad.safetensors"
    (hlen,) = struct.unpack("<Q", blob[:8])
    cuts = sorted({0, 1, 4, 7, 8, 9, 8 + hlen // 2, 8 + hlen - 1, 8 + hlen, 8 + hlen + 1, len(blob) - 1})
    for cut in cuts:
        bad.write_bytes(blob[:cut])
        with pytest.raises(gr.FormatError):
            gr.load(bad, fresh)
        with pytest.raises(gr.FormatError):
            gr.load(bad)
        assert_values(fresh, before)


def test_bit_flips_in_header_never_crash_or_half_load(tmp_path):
    path, blob, fresh, before = _valid_file(tmp_path)
    bad = tmp_path / "flip.safetensors"
    (hlen,) = struct.unpack("<Q", blob[:8])
    raised = 0
    for pos in range(0, 8 + hlen):
        for bit in range(8):
            b = bytearray(blob)
            b[pos] ^= 1 << bit
            bad.write_bytes(bytes(b))
            try:
                gr.load(bad, fresh)
            except gr.FormatError:
                raised += 1
                assert_values(fresh, before)
                continue
            # a flip that still gives a valid, matching file must load exactly the saved values
            for n in fresh:
                n.let(np.full(n.shape, 9, dtype=n.value.dtype))
    assert raised > 0.9 * (8 + hlen) * 8


HOSTILE = {
    "huge_header_length": (b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', b"\0" * 4, 1 << 62),
    "header_longer_than_file": (b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', b"\0" * 4, 10_000),
    "not_json": (b"this is not json at all", b"", None),
    "json_array": (b"[1, 2, 3]", b"", None),
    "unknown_dtype": ({"a": {"dtype": "F99", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4, None),
    "offsets_beyond_file": ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 4, None),
    "shape_offsets_disagree": ({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8, None),
    "giant_shape": ({"a": {"dtype": "F64", "shape": [1 << 40, 1 << 40], "data_offsets": [0, 8]}}, b"\0" * 8, None),
    "negative_dim": ({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4, None),
    "reversed_offsets": ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}, b"\0" * 4, None),
    "overlapping": ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                     "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, b"\0" * 12, None),
    "missing_fields": ({"a": {"dtype": "F32"}}, b"", None),
    "zero_length_header": (b"", b"", None),
    "non_utf8": (b'{"\xff\xfe":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', b"\0" * 4, None),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_headers(tmp_path, case):
    header, data, length = HOSTILE[case]
    path = tmp_path / f"{case}.safetensors"
    write_raw(path, header, data, length)
    g = gr.Graph()
    a = g.vector(gr.float32, 1, name="a", init=gr.init.ones())
    with pytest.raises(gr.FormatError):
        gr.load(path)
    with pytest.raises(gr.FormatError):
        gr.load(path, [a])
    np.testing.assert_array_equal(a.value, np.ones(1, np.float32))


def test_load_into_non_leaf_raises(tmp_path):
    path = tmp_path / "m.safetensors"
    gr.save(path, {"y": np.ones(2, np.float32)})
    g = gr.Graph()
    x = g.vector(gr.float32, 2, name="x", init=gr.init.zeros())
    y = x * 2.0
    with pytest.raises(gr.GraphError):
        gr.load(path, {"y": y})


# ---------------------------------------------------------------------------------------------
# crash safety
# ---------------------------------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import os, sys, threading
    import numpy as np
    import gorgon_rs as gr

    path, mode, delay = sys.argv[1], sys.argv[2], float(sys.argv[3])
    big = np.empty(4_000_000, np.float32)
    if mode == "exit":
        threading.Timer(delay, lambda: os._exit(3)).start()
    print("ready", flush=True)
    i = 0
    while True:
        i += 1
        big.fill(i)
        gr.save(path, {"w": big, "i": np.array(i, np.int64)})
    """
)


@pytest.mark.parametrize("mode,delay", [("kill", 0.15), ("kill", 0.4), ("kill", 0.75), ("exit", 0.2), ("exit", 0.5)])
def test_process_killed_mid_save_leaves_a_whole_file(tmp_path, mode, delay):
    path = tmp_path / "ckpt.safetensors"
    gr.save(path, {"w": np.full(4_000_000, -1, np.float32), "i": np.array(-1, np.int64)})
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    proc = subprocess.Popen([sys.executable, str(script), str(path), mode, str(delay)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = proc.stdout.readline()
        assert line.strip() == b"ready", proc.stderr.read().decode()
        if mode == "kill":
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    data = gr.load(path)      # must parse: either the old file or one complete new one
    i = int(data["i"])
    assert data["w"].shape == (4_000_000,)
    assert (data["w"] == i).all(), "torn write: the tensor does not match its step counter"


# ---------------------------------------------------------------------------------------------
# plot_history
# ---------------------------------------------------------------------------------------------


def test_plot_history_png(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "h.png"
    out = gr.plot_history({"loss": [2.0, 1.0, 0.5], "test_accuracy": [0.5, 0.8, 0.9]}, path)
    assert out == str(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_history_bad_input(tmp_path):
    with pytest.raises(ValueError):
        gr.plot_history({}, tmp_path / "x.png")
    with pytest.raises(ValueError):
        gr.plot_history({"loss": ["a", "b"]}, tmp_path / "x.png")

"""Reliability promises of gorgon_rs about persistence (RELIABILITY.md lists which test proves
which promise; the other reliability tests are in ``test_reliability*.py``).

A process that dies between writing and renaming leaves the previous file intact; hostile files
(deep JSON nesting, duplicate keys, lying lengths) raise ``gr.FormatError`` and change nothing.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

import gorgon_rs as gr


# ---------------------------------------------------------------------------------------------
# Persistence faults (test_io.py covers truncation, header bit flips, hostile headers and
# processes killed at random points of a save loop)
# ---------------------------------------------------------------------------------------------

SAVE_CHILD = """
import sys, numpy as np, gorgon_rs as gr
gr.save(sys.argv[1], {"w": np.full(1000, 2.0, np.float32), "step": np.array(2)})
print("rename happened", flush=True)
"""


def test_crash_between_write_and_rename_leaves_the_previous_file_intact(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    gr.save(path, {"w": np.full(1000, 1.0, np.float32), "step": np.array(1)})
    before = path.read_bytes()
    script = tmp_path / "child.py"
    script.write_text(SAVE_CHILD)
    env = dict(os.environ, GORGON_TEST_CRASH_BEFORE_RENAME="1")
    r = subprocess.run([sys.executable, str(script), str(path)], capture_output=True, text=True, env=env,
                       timeout=120)
    assert r.returncode != 0 and "rename happened" not in r.stdout, "the crash hook did not fire"
    assert path.read_bytes() == before
    data = gr.load(path)
    assert int(data["step"]) == 1 and (data["w"] == 1.0).all()
    # and a normal save afterwards replaces it
    r2 = subprocess.run([sys.executable, str(script), str(path)], capture_output=True, text=True, timeout=120)
    assert r2.returncode == 0, r2.stderr
    assert int(gr.load(path)["step"]) == 2


def test_crash_before_the_first_rename_leaves_no_file_at_the_path(tmp_path):
    path = tmp_path / "new.safetensors"
    script = tmp_path / "child.py"
    script.write_text(SAVE_CHILD)
    env = dict(os.environ, GORGON_TEST_CRASH_BEFORE_RENAME="1")
    r = subprocess.run([sys.executable, str(script), str(path)], capture_output=True, text=True, env=env,
                       timeout=120)
    assert r.returncode != 0
    assert not path.exists(), "a half-saved file appeared under the final name"
    with pytest.raises(FileNotFoundError):
        gr.load(path)


def _raw(path, header: bytes, data: bytes = b"", length=None):
    path.write_bytes(struct.pack("<Q", len(header) if length is None else length) + header + data)


HOSTILE_MORE = {
    "deep_nesting": b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "deep_object_nesting": b'{"a":' + b'{"b":' * 50_000 + b"1" + b"}" * 50_000 + b"}",
    "duplicate_keys": b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
                      b'"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}',
    "nan_literal": b'{"a":{"dtype":"F32","shape":[NaN],"data_offsets":[0,4]}}',
    "float_shape": b'{"a":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}}',
    "overflowing_shape_product": json.dumps(
        {"a": {"dtype": "F32", "shape": [2**32, 2**32, 2**32], "data_offsets": [0, 4]}}).encode(),
    "offsets_past_u64": b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,18446744073709551620]}}',
    "hole_between_tensors": json.dumps({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                                        "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}}).encode(),
    "metadata_not_strings": json.dumps({"__metadata__": {"k": 1},
                                        "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode(),
    "bom_prefix": b"\xef\xbb\xbf" + json.dumps({"a": {"dtype": "F32", "shape": [1],
                                                       "data_offsets": [0, 4]}}).encode(),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_MORE))
def test_more_hostile_headers_raise_format_error_and_change_nothing(tmp_path, case):
    header = HOSTILE_MORE[case]
    data = b"\x00" * 12 if case == "hole_between_tensors" else b"\x00" * 4
    path = tmp_path / f"{case}.safetensors"
    _raw(path, header, data)
    g = gr.Graph()
    a = g.vector(gr.float32, 1, name="a", value=[7.0])
    with pytest.raises(gr.FormatError):
        gr.load(path)
    with pytest.raises(gr.FormatError):
        gr.load(path, [a])
    np.testing.assert_array_equal(a.value, [7.0])


def test_flips_in_the_data_section_are_not_detected_but_never_crash(tmp_path):
    # safetensors has no checksum: a flipped data bit loads as a different value. Promised:
    # no crash, the right shapes and dtypes (documented in RELIABILITY.md as not promised).
    path = tmp_path / "d.safetensors"
    arrs = {"f": np.linspace(-1, 1, 16).astype(np.float32), "b": np.array([True, False, True]),
            "i": np.arange(5, dtype=np.int64)}
    gr.save(path, arrs)
    blob = bytearray(path.read_bytes())
    (hlen,) = struct.unpack("<Q", bytes(blob[:8]))
    for pos in range(8 + hlen, len(blob)):
        b = bytearray(blob)
        b[pos] ^= 0xFF
        path.write_bytes(bytes(b))
        d = gr.load(path)
        for k, a in arrs.items():
            assert d[k].shape == a.shape and d[k].dtype == a.dtype
        assert set(np.unique(d["b"])) <= {True, False}

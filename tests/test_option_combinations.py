"""Features that do not combine are refused or left out by name, never mixed silently.

* Block-sparse weights (``sparse=``) are not written for a layer with cell options (the variant
  cell takes dense products): such a layer stays dense, so the file equals the dense one and the
  outputs are the float reference's.
* The bounded state scale assumes states in [-1, 1]; cell options (other activations, clip,
  projection) do not guarantee it, so ``state_scale="bounded"`` is refused naming the layer.
"""

from __future__ import annotations

import numpy as np
import pytest

import rnncore as rc
from rnncore.nn.extended import ExtendedRecurrent


def _ext(**kw):
    m = ExtendedRecurrent("LSTM", 3, 6, dtype="float32", **kw)
    g = np.random.default_rng(4)
    for name, v in m.params.items():
        v[...] = g.standard_normal(v.shape) * 0.5
        if name.startswith("weight_hh"):
            v[...] = 0.0   # every block zero: a plain layer would be stored block-sparse
    return m


def test_sparse_is_not_written_for_a_layer_with_cell_options():
    m = _ext(clip=0.7)
    dense = rc.compile(m, "q8")
    sparse = rc.compile(m, "q8", sparse=True)
    assert sparse.data == dense.data
    x = np.random.default_rng(1).standard_normal((2, 5, 3)).astype(np.float32)
    assert np.array_equal(sparse.run(x), dense.run(x))
    # the same weights in a plain LSTM are stored block-sparse (the option is what keeps it dense)
    plain = rc.nn.LSTM(3, 6, dtype="float32")
    plain.load_state_dict({k: v for k, v in m.state_dict().items() if k in plain.state_dict()})
    assert rc.compile(plain, "q8", sparse=True).data != rc.compile(plain, "q8").data


def test_bounded_state_scale_is_refused_with_cell_options():
    m = _ext(clip=0.7)
    with pytest.raises(ValueError, match=r"state_scale=.bounded.: layer 0 has cell options \(.*clip"):
        rc.compile(m, "q8", state_scale="bounded")
    rc.compile(m, "q8", state_scale="dynamic")   # the other scales stay available

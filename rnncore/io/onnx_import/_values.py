"""The importer's values: what each ONNX tensor is, symbolically.

The graph is run *symbolically*: each value is "the model's data, with these named axes
(batch, time, feature, direction, hidden), after these layers" (:class:`_Seq`), "a shape
vector" (:class:`_Sym`), "zeros", "the final states of node k", a graph input not yet
interpreted, or a constant (a plain ``numpy`` array).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class _Seq:
    """The model's data: named axes (sizes where known) after the layers ``pipe``."""
    axes: tuple
    sizes: tuple
    pipe: tuple
    integer: bool = False


@dataclass
class _Sym:
    """An integer vector (or scalar) whose items are ints or axis labels ('X0', 'T', ...)."""
    items: list
    scalar: bool = False


@dataclass
class _Zeros:
    pass


@dataclass
class _Input:
    name: str
    shape: tuple
    integer: bool


@dataclass
class _StateIn:
    """Rows ``rows`` (along ``axis``) of a graph input that feeds initial states."""
    name: str
    rows: list
    axis: int


@dataclass
class _Lens:
    """The graph input ``name`` of the recurrent nodes' ``sequence_lens`` (batch,), cast to a float
    type, as a column (batch, 1) when ``column``: what ``sum(1) / lengths[:, None]`` divides by."""
    name: str
    column: bool = False


@dataclass
class _SumT:
    """``ReduceSum`` over time (keepdims=0) of the data ``seq``: only divided by the lengths
    (:class:`_Lens`) is it a layer (the masked mean)."""
    seq: _Seq
    node: str


@dataclass
class _Final:
    """Final states: ``entries[i] = (node, direction, 'h' | 'c')`` stacked on axis 'S'."""
    entries: list
    axes: tuple


@dataclass
class _FinalCat:
    """Final states of single directions concatenated along the feature axis: (B, sum H)."""
    entries: list


@dataclass
class OnnxSignature:
    """How an imported model's forward maps onto the ONNX graph's inputs and outputs."""
    input: str
    input_layout: str                        # "BT" or "TB"
    lengths: str | None = None
    states: list = field(default_factory=list)     # (input name, node, kind, axes, rows or None)
    outputs: list = field(default_factory=list)    # (name, "y", axes) / (name, "state", entries, axes)
    node_rows: dict = field(default_factory=dict)  # node -> (recurrent module index, layer)
    directions: dict = field(default_factory=dict)  # node -> D
    stripped: list = field(default_factory=list)   # final activations dropped (strip_final_activation)


class _Refused(ValueError):
    pass


def _attrs(node) -> dict:
    """A node's attributes as Python values (strings decoded), by name."""
    from onnx import helper

    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        if isinstance(v, bytes):
            v = v.decode()
        elif isinstance(v, list) and v and isinstance(v[0], bytes):
            v = [s.decode() for s in v]
        out[a.name] = v
    return out


def _known(v):
    """A shape vector whose items are all known becomes a constant."""
    if isinstance(v, _Sym) and all(isinstance(i, int | np.integer) for i in v.items):
        arr = np.array(v.items, np.int64)
        return arr.reshape(()) if v.scalar else arr
    return v

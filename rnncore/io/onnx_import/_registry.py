"""The op registry: one handler per ONNX op type.

A handler is ``handler(imp, node, ins, attrs) -> list of output values``: ``imp`` is the
running :class:`~rnncore.io.onnx_import._core._Importer` (its helpers ``data``, ``const``,
``refuse``, ``add_layer`` ...), ``node`` the ``onnx.NodeProto``, ``ins`` the symbolic or constant
values of the node's inputs (None for an omitted optional input), ``attrs`` its attributes as
Python values. Register it with ``@register("OpType", ...)``; the importer dispatches every node
of the graph through :data:`OPS` and refuses an op type that has no handler, naming it and the
node.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Handler = Callable[[Any, Any, list, dict], list]

#: op type -> handler (default ONNX domain)
OPS: dict[str, Handler] = {}


def register(*op_types: str) -> Callable[[Handler], Handler]:
    """Decorator: ``fn`` handles the nodes of each of ``op_types``; one handler per op type."""

    def deco(fn: Handler) -> Handler:
        for op in op_types:
            if op in OPS:
                raise ValueError(f"onnx_import: op type {op!r} already has a handler ({OPS[op].__name__})")
            OPS[op] = fn
        return fn

    return deco

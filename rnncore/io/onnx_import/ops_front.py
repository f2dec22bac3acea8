"""Front-end layers of the chain importer: 1-D ``MaxPool`` / ``AveragePool`` over time.

PyTorch's poolings read ``(B, C, T)``, so an exported model wraps them in two ``Transpose``
nodes; the data's axes are labels here (:class:`~._values._Seq`), so the pooling finds its
time axis as the last one and its channels as the feature axis, whatever the transposes did.
"""

from __future__ import annotations

from rnncore.io.onnx_import._graph import pool_options
from rnncore.io.onnx_import._registry import register
from rnncore.io.onnx_import._values import _Seq


@register("MaxPool", "AveragePool")
def op_pool(imp, node, ins, a):
    from rnncore.nn.conv import AvgPool1d, MaxPool1d

    s = imp.data(ins[0], node)
    opts = pool_options(node, a, lambda why: imp.refuse(node, why))
    labels = tuple(imp.lab(x) for x in s.axes)
    if len(labels) != 3 or labels[1] != "F" or labels[0] in ("T", "F") or labels[2] in ("B", "F"):
        imp.refuse(node, f"pools data with axes {labels}; expected (batch, features, time)")
    C = s.sizes[1]
    if C is None:
        imp.refuse(node, "the number of channels of its input is unknown")
    for lab, want in ((labels[0], "B"), (labels[2], "T")):
        if lab in ("X0", "X1"):
            imp.alias[lab] = want
    if imp.engine:      # as_spec / graph=False: what the C engine cannot run, refused by node
        from rnncore.io.onnx_import._lower import engine_time_padding

        engine_time_padding(node.op_type, a, opts["kernel_size"], opts["stride"], opts["dilation"], None,
                            lambda why, what: imp.refuse(node, f"{why}; {what}"))
    cls = MaxPool1d if node.op_type == "MaxPool" else AvgPool1d
    layer = {"kind": "module", "module": cls(channels=C, dtype=imp.dtype, **opts)}
    return [_Seq(s.axes, (s.sizes[0], C, None), imp.add_layer(s.pipe, layer))]

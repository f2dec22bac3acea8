"""Import ONNX recurrent models: ``rc.io.from_onnx(path_or_model)``.

Two parts:

1. **The operators.** ``RNN``, ``GRU`` and ``LSTM`` nodes with every attribute of the
   ONNX spec: ``direction`` (forward / reverse / bidirectional), ``layout`` 0 and 1,
   ``activations`` with ``activation_alpha`` / ``activation_beta``, ``clip``,
   ``linear_before_reset``, ``input_forget``, peepholes ``P``, ``sequence_lens``,
   ``initial_h`` / ``initial_c`` and the optional outputs. Weights are converted to
   PyTorch's layout: ONNX gate order GRU ``z, r, h`` -> ``r, z, n``, LSTM ``i, o, f, c`` ->
   ``i, f, g, o``; ``B = [Wb | Rb]`` -> ``bias_ih``, ``bias_hh``; ``P = [p_i, p_o, p_f]``
   -> rows ``p_i, p_f, p_o``. ``linear_before_reset=0`` (the ONNX default) is the GRU's
   ``reset_after=False`` form, ``1`` is PyTorch's.

2. **The graph around them.** The importer runs the graph *symbolically*: each value is
   tracked as "the model's data, with these named axes (batch, time, feature, direction,
   hidden), after these layers", "a shape vector", "zeros", "the final states of node k",
   or a constant. So the ``Shape / Gather / Unsqueeze / Concat / ConstantOfShape / Slice``
   nodes that ``torch.onnx.export`` writes to build zero initial states, the ``Transpose`` /
   ``Squeeze`` / ``Reshape`` nodes that move the direction axis into the features, the
   ``Gather`` that picks the last step, an embedding ``Gather`` and a trailing ``Gemm`` or
   ``MatMul`` + ``Add`` head are understood for what they do, whatever order they come in,
   and anything else is refused with the node's name and op type — never guessed.

The result is an rnncore reference model (``rc.nn.GRU`` ... or ``rc.nn.Sequential``) that
reads batch-major ``(B, T, F)`` like every rnncore model. ``model.onnx_io`` records how the
ONNX graph's inputs and outputs map onto it, and :func:`onnx_run` runs the model with ONNX
feeds and returns ONNX-shaped outputs (used by the conformance tests).

3. **Whole graphs.** A graph that is not such a chain (a front-end before the recurrent layer,
   element-wise ops on the data, several data inputs, a learned initial state), or any graph
   imported with ``from_onnx(path, inputs=[...], outputs=[...])``, becomes an
   :class:`OnnxGraph` (:mod:`._graph`): constant sub-graphs folded, shape arithmetic kept as
   exact integer operations on the data's actual shape, the layers as rnncore layers, and a
   ``forward`` that takes the graph's inputs and returns its outputs by the graph's names and
   layouts. It runs on the NumPy reference (``as_spec=True`` refuses it).

The chain importer refuses on purpose: a non-zero *constant* initial state (rnncore layers have no learned
initial state; feed it as ``state``), a constant ``sequence_lens``, ``sequence_lens`` on
some recurrent nodes but not others, weights that are graph inputs rather than
initializers (use :func:`weights_to_initializers`), and element-wise ops on the data.

Layout of the package: :mod:`._core` loads the model and walks the graph, dispatching each
node through the op registry :data:`OPS` (:mod:`._registry`, one handler per op type,
registered with :func:`register`); the handlers are in :mod:`.ops_recurrent` (the three
operators), :mod:`.ops_graph` (shapes, constants, data movement) and :mod:`.ops_head` (heads,
pooling); :mod:`._values` holds the symbolic values and :mod:`._run` runs an imported model
with ONNX feeds. An op type without a handler is refused with its name and the node's.
"""

from rnncore.io.onnx_import._core import from_onnx, weights_to_initializers
from rnncore.io.onnx_import._graph import OnnxGraph
from rnncore.io.onnx_import._registry import OPS, register
from rnncore.io.onnx_import._run import onnx_run
from rnncore.io.onnx_import._values import OnnxSignature

__all__ = ["from_onnx", "onnx_run", "weights_to_initializers", "OnnxSignature", "OnnxGraph", "OPS",
           "register"]

"""int8 quantisation and the NumPy *quantised reference* of the C core's q8 kernels.

* :mod:`rnncore.quant.scheme`: the bit-exact rules (per-row weight scales, per-vector
  activation scales, exact int32 accumulators, float32 epilogue);
* :mod:`rnncore.quant.reference`: q8 (and float) steps and sequences of RNN / GRU (both
  forms) / LSTM stacks, bidirectional, with lengths, embedding and linear head;
* :func:`calibrate`: static activation scales from data; :func:`choose_front_f32`: which
  convolutions (frame_conv, conv_time) of a q8 front-end to keep in float32, measured on data.

The fully-integer path (microcontrollers, no float in a step; docs/integer.md) is in
:mod:`rnncore.quant.integer` (the spec), :mod:`rnncore.quant.fixedpoint` (TFLite's fixed-point
arithmetic) and :mod:`rnncore.quant.tflite` (TFLite integer LSTMs read as its cells).
"""

from rnncore.quant.calibrate import CalibrationWarning, FrontF32Choice, calibrate, choose_front_f32
from rnncore.quant.reference import (
    Calibration,
    QCell,
    QLayer,
    QLinear,
    QMatrix,
    QModel,
    float_cell_step,
    float_forward,
    forward,
    model_step,
    q8_cell_step,
    q8_forward,
    q8_linear,
    qmodel_from_rnc,
    quantize_model,
)
from rnncore.quant.scheme import (
    BOUNDED_STATE_SCALE,
    activation_scales,
    epilogue,
    int_matmul,
    int_matmul16,
    quantize_activation,
    quantize_activation16,
    quantize_weights,
    quantize_weights16,
    quantize_weights_q4,
)
from rnncore.spec import (
    CellWeights,
    LayerSpec,
    LinearSpec,
    ModelSpec,
    spec_from_model,
    spec_from_rnc,
    to_rnc_spec,
)

__all__ = [
    "BOUNDED_STATE_SCALE", "Calibration", "CalibrationWarning", "CellWeights", "FrontF32Choice", "LayerSpec",
    "LinearSpec", "choose_front_f32",
    "ModelSpec", "QCell", "QLayer", "QLinear", "QMatrix", "QModel", "activation_scales", "calibrate",
    "epilogue", "float_cell_step", "float_forward", "forward", "int_matmul", "int_matmul16", "model_step",
    "q8_cell_step", "q8_forward", "q8_linear", "qmodel_from_rnc", "quantize_activation",
    "quantize_activation16", "quantize_model", "quantize_weights", "quantize_weights16",
    "quantize_weights_q4", "spec_from_model", "spec_from_rnc",
    "to_rnc_spec",
]

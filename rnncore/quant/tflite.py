"""Read a full-integer TFLite UNIDIRECTIONAL_SEQUENCE_LSTM as an :class:`~rnncore.quant.integer.IntCell`.

Needs ``flatbuffers`` and the TFLite schema module of ``ai_edge_litert`` (the ``test`` extra);
TensorFlow is not needed. The parameters are derived as TFLite's ``lstm.cc``
(``PopulateQuantizedLstmParams8x8_16``) derives them, so the integer step reproduces LiteRT:

* gate pre-activation scale 2^-12 (no layer norm: the intermediate tensors 0-3 are unused);
* ``M_ih = s_w s_x / 2^-12`` and ``M_hh = s_w s_h / 2^-12``, computed in float32 as TFLite
  does, then ``QuantizeMultiplier`` (double);
* ``M_h = 2^-15 / s_hidden * 2^-15`` (float32), ``s_hidden`` / ``zp_hidden`` from intermediate 4;
* effective biases ``b - zp_x rowsum(W_ih)`` and ``-zp_h rowsum(W_hh)``;
* ``cell_shift = log2(s_cell)`` (TFLite requires a power of two); ``cell_clip = cell_clip / s_cell``.
"""

from __future__ import annotations

import math

import numpy as np

from rnncore.quant import fixedpoint as fx
from rnncore.quant.integer import IntCell, quantize_multipliers

_F32 = np.float32


def _schema():
    try:
        from ai_edge_litert import schema_py_generated as fb
    except ImportError as e:  # pragma: no cover - the test extra installs it
        raise ImportError("reading .tflite files needs ai-edge-litert (pip install 'rnncore[test]')") from e
    return fb


def _tensor(model, sg, index: int):
    t = sg.tensors[index]
    q = t.quantization
    data = model.buffers[t.buffer].data
    return t, (None if q is None or q.scale is None else float(q.scale[0])), \
        (0 if q is None or q.zeroPoint is None else int(q.zeroPoint[0])), \
        (None if data is None else np.asarray(data, np.uint8))


def read_tflite_lstm(path_or_bytes) -> tuple[IntCell, dict]:
    """The first UNIDIRECTIONAL_SEQUENCE_LSTM of a full-integer .tflite model.

    Returns
    -------
    cell : IntCell (``cell='lstm'``)
    info : ``{"time_major": bool, "input_index": int, "output_index": int,
    "output_scale": float, "output_zp": int}``
    """
    fb = _schema()
    blob = path_or_bytes if isinstance(path_or_bytes, bytes | bytearray) else open(path_or_bytes, "rb").read()
    model = fb.ModelT.InitFromPackedBuf(bytearray(blob), 0)
    sg = model.subgraphs[0]
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    lstm = fb.BuiltinOperator.UNIDIRECTIONAL_SEQUENCE_LSTM
    ops = [op for op in sg.operators if codes[op.opcodeIndex] == lstm]
    if not ops:
        raise ValueError("read_tflite_lstm: no UNIDIRECTIONAL_SEQUENCE_LSTM op in the model")
    op = ops[0]
    ins = list(op.inputs)
    if any(ins[k] >= 0 for k in (9, 10, 11, 16, 17)) or (len(ins) > 20 and any(i >= 0 for i in ins[20:])):
        raise ValueError("read_tflite_lstm: peephole, projection and layer-norm LSTMs are not supported")
    if ins[1] < 0:
        raise ValueError("read_tflite_lstm: CIFG (no input gate) is not supported")
    if op.intermediates is None or len(op.intermediates) != 5:
        raise ValueError("read_tflite_lstm: expected the 5 intermediates of TFLite's 8x8_16 LSTM")
    opts = op.builtinOptions

    x_t, s_x, zp_x, _ = _tensor(model, sg, ins[0])
    h_t, s_h, zp_h, _ = _tensor(model, sg, ins[18])
    c_t, s_c, _, _ = _tensor(model, sg, ins[19])
    _, s_hid, zp_hid, _ = _tensor(model, sg, op.intermediates[4])
    if x_t.type != fb.TensorType.INT8 or c_t.type != fb.TensorType.INT16:
        raise ValueError("read_tflite_lstm: expected int8 input and int16 cell state")
    H = int(h_t.shape[-1])
    w_ih, w_hh, b, m_ih, m_hh = [], [], [], [], []
    gate_scale = _F32(2.0 ** -12)
    for gate in range(4):
        _, s_wi, _, wi = _tensor(model, sg, ins[1 + gate])
        _, s_wr, _, wr = _tensor(model, sg, ins[5 + gate])
        _, _, _, bb = _tensor(model, sg, ins[12 + gate])
        wi = wi.view(np.int8).reshape(H, -1)
        wr = wr.view(np.int8).reshape(H, H)
        bb = bb.view(np.int32) if bb is not None else np.zeros(H, np.int32)
        w_ih.append(wi)
        w_hh.append(wr)
        b.append((bb.astype(np.int64) - zp_x * wi.astype(np.int64).sum(1),
                  -zp_h * wr.astype(np.int64).sum(1)))
        m_ih.append(np.full(H, _F32(_F32(s_wi) * _F32(s_x)) / gate_scale, np.float64))
        m_hh.append(np.full(H, _F32(_F32(s_wr) * _F32(s_h)) / gate_scale, np.float64))
    cell_shift = math.log2(s_c)
    if cell_shift != int(cell_shift):
        raise ValueError(f"read_tflite_lstm: the cell scale {s_c} is not a power of two")
    mi, ei = quantize_multipliers(np.concatenate(m_ih))
    mh, eh = quantize_multipliers(np.concatenate(m_hh))
    hidden = _F32(_F32(2.0 ** -15) / _F32(s_hid)) * _F32(2.0 ** -15)
    m_h, e_h = fx.quantize_multiplier(float(hidden))
    clip = 0
    if opts.cellClip > 0:
        clip = int(min(max(_F32(opts.cellClip) / _F32(s_c), -32768.0), 32767.0))
    cell = IntCell("lstm", int(x_t.shape[-1]), H, np.concatenate(w_ih), np.concatenate(w_hh),
                   np.concatenate([p[0] for p in b]).astype(np.int32),
                   np.concatenate([p[1] for p in b]).astype(np.int32),
                   mi, ei, mh, eh, m_h, e_h, s_x, zp_x, s_hid, zp_hid,
                   cell_shift=int(cell_shift), cell_clip=clip)
    cell.validate()
    y_t, s_y, zp_y, _ = _tensor(model, sg, op.outputs[0])
    return cell, {"time_major": bool(opts.timeMajor), "output_scale": s_y, "output_zp": zp_y,
                  "state_scale": s_h, "state_zp": zp_h}

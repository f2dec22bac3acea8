"""Activations used by the recurrent cells, and their derivatives.

Each derivative is written in terms of the activation's *output* ``y``, because that is
what a cell keeps in its cache for backward:

=========  ==========================  ====================================
function   forward                     derivative, from the output ``y``
=========  ==========================  ====================================
sigmoid    ``y = 1 / (1 + exp(-a))``   ``dy/da = y (1 - y)``
tanh       ``y = tanh(a)``             ``dy/da = 1 - y^2``
relu       ``y = max(a, 0)``           ``dy/da = [y > 0]``
=========  ==========================  ====================================

All functions keep the dtype of their input (float32 stays float32).
"""

from __future__ import annotations

import numpy as np


def sigmoid(a: np.ndarray) -> np.ndarray:
    """Logistic sigmoid ``1 / (1 + exp(-a))``, elementwise: the one sigmoid of every reference.

    Computed as ``0.5 * tanh(0.5 a) + 0.5``, which is the same function (because
    ``tanh(u) = 2 sigmoid(2u) - 1``), for two reasons:

    * it never overflows for large ``|a|`` (``exp(-a)`` does), in float32 and float64;
    * it is the C core's formula (``rnc_sigmoidf`` in ``csrc/src/kernels/activations.h``:
      ``0.5f + 0.5f * tanh(0.5f x)``), so in float32 the quantised reference's sigmoid differs
      from the C kernels' only through their tanh approximation (docs/q8-contract.md).

    The float reference (:mod:`rnncore.nn.cells`), the quantised reference
    (:mod:`rnncore.quant.reference`) and :class:`rnncore.nn.extended.ExtendedRecurrent` all
    call this function.

    Parameters
    ----------
    a : ndarray (...), float32 or float64

    Returns
    -------
    ndarray (...), the dtype of ``a``
    """
    y = np.tanh(0.5 * a)
    y *= 0.5
    y += 0.5
    return y


def tanh(a: np.ndarray) -> np.ndarray:
    """Hyperbolic tangent, elementwise."""
    return np.tanh(a)


def relu(a: np.ndarray) -> np.ndarray:
    """``max(a, 0)``, elementwise."""
    return np.maximum(a, 0)


def sigmoid_grad(y: np.ndarray) -> np.ndarray:
    """``d sigmoid / da`` given the output ``y = sigmoid(a)``: ``y (1 - y)``."""
    return y * (1 - y)


def tanh_grad(y: np.ndarray) -> np.ndarray:
    """``d tanh / da`` given the output ``y = tanh(a)``: ``1 - y^2``."""
    return 1 - y * y


def relu_grad(y: np.ndarray) -> np.ndarray:
    """``d relu / da`` given the output ``y = relu(a)``: 1 where ``y > 0``, else 0."""
    return (y > 0).astype(y.dtype)


ACTIVATIONS = {"tanh": (tanh, tanh_grad), "relu": (relu, relu_grad), "sigmoid": (sigmoid, sigmoid_grad)}

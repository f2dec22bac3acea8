#!/usr/bin/env bash
# Create a separate virtual environment with the engines rnncore is compared against.
# Never used by CI or the test suite.  Usage:
#   bash benchmarks/peers/setup_peers.sh [VENV_DIR]      (default: /work/peer-venv)
# The venv also gets rnncore itself (editable), so compare_peers.py can time it in the same run.
set -euo pipefail
VENV="${1:-/work/peer-venv}"
PY="${PYTHON:-python3}"
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"

"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip wheel
# torch: only this version (a CPU wheel); other versions pull gigabytes of CUDA libraries.
"$VENV/bin/python" -m pip install -q "torch==2.13.0"
"$VENV/bin/python" -m pip install -q \
    "onnx==1.23.2" "onnxruntime==1.31.1" "openvino==2026.4.1" "ncnn==1.0.20261020" \
    "matplotlib==3.11.2" "Cython>=3.0"
# LiteRT runtime + TensorFlow (CPU build) only for the one-time Keras -> .tflite conversion.
# If TensorFlow cannot be installed, compare_peers.py reports LiteRT as skipped and says why.
if ! "$VENV/bin/python" -m pip install -q "ai-edge-litert==2.3.0" "tensorflow-cpu==2.21.0"; then
    echo "WARNING: TensorFlow/LiteRT install failed; LiteRT rows will be skipped" >&2
fi
# rnncore itself (builds the C core extension when present).
"$VENV/bin/python" -m pip install -q -e "$ROOT" || echo "WARNING: rnncore install failed" >&2
"$VENV/bin/python" - <<'PY'
import importlib
for m in ["torch", "onnxruntime", "onnx", "openvino", "ncnn", "matplotlib", "ai_edge_litert",
          "tensorflow", "rnncore"]:
    try:
        mod = importlib.import_module(m)
        print(f"{m:16s} {getattr(mod, '__version__', '?')}")
    except Exception as e:  # report, do not fail: the benchmark skips what is missing
        print(f"{m:16s} MISSING ({type(e).__name__}: {e})")
PY

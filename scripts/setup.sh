#!/usr/bin/env bash
# Create .venv in the repository and install spin_diff with its test and detect extras, then
# fetch the keypoint detector's model files (once, from PyPI's mediapipe wheel; see docs/fitting.md).
#
# torch: an already importable torch (e.g. a CUDA build) is kept. Otherwise TORCH_SPEC is
# installed first (default torch==2.13.0, which on these CPU machines resolves to a local CPU
# wheel; set TORCH_INDEX_URL to PyTorch's CPU wheel index elsewhere to avoid CUDA wheels), so
# that spin_diff's own "torch>=2.1" requirement is already met and pulls nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
    .venv/bin/pip install --quiet "${TORCH_SPEC:-torch==2.13.0}" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
fi
# ai-edge-litert has wheels for Linux (x86-64, aarch64), macOS arm64 and Windows, not for Intel
# macs: there the package is installed without the detector (fit then needs --keypoints).
if ! .venv/bin/pip install --quiet -e ".[test,detect]"; then
    echo "setup.sh: the detect extra (ai-edge-litert) does not install here; installing without it" >&2
    .venv/bin/pip install --quiet -e ".[test]"
fi
if .venv/bin/python -c "import ai_edge_litert" >/dev/null 2>&1; then
    .venv/bin/spin-diff detect --setup
fi

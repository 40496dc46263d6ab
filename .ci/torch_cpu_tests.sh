#!/usr/bin/env bash
# The torch door's device-test matrix (tests/gpu) on the CPU kernels
# (FLASHMASK_TEST_DEVICE=cpu): the tests' own logic, their dense reference and
# the door are checked here, before a GPU run depends on them (a test whose
# inputs the checks refuse fails here, not on the device). ~2 min with a CPU
# torch in its own venv (torch 2.13.0+cpu lies on this machine's disk).
set -euo pipefail
cd "$(dirname "$0")/.."
work=${FLASHMASK_CI_WORK:-$(mktemp -d)}
python -m venv "$work/venv_torch"
"$work/venv_torch/bin/pip" install -q torch==2.13.0 numpy pytest
"$work/venv_torch/bin/python" custom_ops/torch/build.py --cpu-only --jobs 2 --build-dir "$work/torch_build"
FLASHMASK_TEST_DEVICE=cpu PYTHONPATH=$PWD "$work/venv_torch/bin/python" -m pytest -q tests/gpu -p no:cacheprovider

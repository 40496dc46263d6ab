#!/usr/bin/env bash
# CI packaging check: build the wheel from a clean copy of the tree (tracked and
# untracked-but-not-ignored files, as a fresh clone has them), check that it holds
# only paddle_flashmask/ and its dist-info (.ci/check_wheel.py), then install it
# into a fresh venv and check that the import loads the wheel's copy, that the ops
# run, and that `pip show` lists the licence and the requirements.
# Needs the build requirements installed (README command 2 does that).
#   bash .ci/check_wheel.sh            (about 1-2 minutes on 2 cores)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python}
WORK=$(mktemp -d /tmp/flashmask_wheel.XXXXXX); trap 'rm -rf "$WORK"' EXIT

echo "-- build the wheel from a clean copy"
mkdir "$WORK/src"
(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$WORK/src")
FLASHMASK_CPU_ONLY=1 $PY -m pip wheel -q --no-build-isolation --no-deps "$WORK/src" -w "$WORK/dist"
WHEEL=$(ls "$WORK"/dist/paddle_flashmask-*.whl)
$PY "$ROOT/.ci/check_wheel.py" "$WHEEL"

echo "-- install it into a fresh venv"
$PY -m venv "$WORK/venv"
VPY=$WORK/venv/bin/python
# Paddle and numpy: the site-packages of the environment that built the wheel,
# after the venv's own (a .pth file appends them), so the wheel's copy comes first.
# (--system-site-packages would miss them when $PY is itself a venv.)
$PY -c "import site; print('\n'.join(site.getsitepackages()))" \
  > "$($VPY -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/build_env.pth"
$VPY -m pip install -q --no-deps --force-reinstall "$WHEEL"
cd "$WORK"  # off the source tree: the import must find the wheel's copy
$VPY -P - "$WORK/venv" <<'PY'
import sys

import paddle

import paddle_flashmask as pfm

venv = sys.argv[1]
assert pfm.__file__.startswith(venv), f"imported {pfm.__file__}, not the wheel's copy under {venv}"
q = paddle.randn([1, 64, 2, 32])
spec = pfm.causal_document_mask([[40, 24]]).to_paddle()
out = pfm.flashmask_attention(q, q, q, spec.startend_row_indices, causal=spec.causal)
assert out.shape == [1, 64, 2, 32] and bool(paddle.isfinite(out).all())
print(f"import and op call OK: {pfm.__file__}")
PY
SHOW=$($VPY -m pip show paddle-flashmask)
echo "$SHOW" | grep -E "^(Name|Version|License|Requires):"
echo "$SHOW" | grep -q "^License: Apache-2.0$" || { echo "check_wheel: pip show lists no Apache-2.0 licence"; exit 1; }
echo "$SHOW" | grep -E "^Requires:" | grep -q "paddlepaddle" || { echo "check_wheel: pip show lists no Paddle requirement"; exit 1; }
echo "$SHOW" | grep -E "^Requires:" | grep -q "numpy" || { echo "check_wheel: pip show lists no numpy requirement"; exit 1; }
echo "wheel check passed"

#!/usr/bin/env bash
# CI compile check of the CUDA build (no GPU, no Paddle GPU wheel needed):
# compiles (-c only) the CUDA sources, one instantiation per kernel family
# (forward, backward: bf16, head_dim 128), for sm_80 and sm_90a, plus the C
# ABI and the Paddle CUDA adapter with -DPADDLE_WITH_CUDA. Paddle's headers
# want cuBLAS/cuFFT/cuRAND/cuSOLVER/cuSPARSE/cuDNN headers: their include/
# dirs are unpacked from the nvidia-*-cu13 wheels into a temp dir if missing.
#   bash .ci/compile_cuda.sh            (about 3-6 minutes on 2 cores)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
NVCC=$CUDA_HOME/bin/nvcc
if [ -n "${FLASHMASK_CI_WORK:-}" ]; then WORK=$FLASHMASK_CI_WORK; else
  WORK=$(mktemp -d /tmp/flashmask_ci.XXXXXX); trap 'rm -rf "$WORK"' EXIT; fi
OBJ=$WORK/obj; mkdir -p "$OBJ"
PY=${PYTHON:-python}
GENCODE="-gencode=arch=compute_80,code=sm_80 -gencode=arch=compute_90a,code=sm_90a"
NVFLAGS="-O3 -std=c++17 --use_fast_math -DFLASHMASK_WITH_CUDA -I$ROOT/custom_ops -Xcompiler=-fPIC $GENCODE"
t0=$(date +%s)
step() { echo "[$(( $(date +%s) - t0 ))s] $*"; }

# 1. CUDA kernels: the small units and one instantiation per family
for src in prep.cu launch.cu inst/fwd_bf16_d128.cu inst/bwd_bf16_d128.cu; do
  step "nvcc $src"
  $NVCC $NVFLAGS -c "$ROOT/custom_ops/core/cuda/$src" -o "$OBJ/$(basename "$src").o"
done
# the launcher links against every instantiation: check they all parse
# (host-only syntax pass, no device code generation)
for src in "$ROOT"/custom_ops/core/cuda/inst/*.cu; do
  $NVCC -std=c++17 -DFLASHMASK_WITH_CUDA -I"$ROOT/custom_ops" -E "$src" -o /dev/null
done
step "preprocessed all $(ls "$ROOT"/custom_ops/core/cuda/inst/*.cu | wc -l) instantiation units"

# 2. the C ABI with CUDA
step "g++ flashmask_api.cc"
g++ -O2 -std=c++17 -fPIC -DFLASHMASK_WITH_CUDA -I"$ROOT/custom_ops" -c "$ROOT/custom_ops/core/flashmask_api.cc" -o "$OBJ/flashmask_api.o"

# 3. the Paddle CUDA adapter
PADDLE_INC=$($PY -c "import paddle; print(paddle.sysconfig.get_include())" 2>/dev/null | tail -1)
HDRS=$WORK/nvidia_headers
if [ ! -f "$HDRS/.done" ]; then
  mkdir -p "$HDRS/wheels"
  for pkg in nvidia-cublas nvidia-cufft nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cudnn-cu13; do
    step "fetch headers of $pkg"
    $PY -m pip download -q --no-deps --only-binary=:all: -d "$HDRS/wheels" "$pkg" 2>&1 | grep -v "^WARNING" || true
  done
  for whl in "$HDRS"/wheels/*.whl; do
    (cd "$HDRS" && unzip -q -o "$whl" 'nvidia/*/include/*')
  done
  rm -rf "$HDRS/wheels"; touch "$HDRS/.done"
fi
PY_INC=$($PY -c "import sysconfig; print(sysconfig.get_paths()['include'])")
INC="-I$PADDLE_INC -I$PADDLE_INC/third_party -I$PADDLE_INC/paddle/phi/api/include/compat -I$PY_INC -I$CUDA_HOME/include -I$CUDA_HOME/include/cccl"
for d in "$HDRS"/nvidia/*/include; do INC="$INC -I$d"; done
step "g++ custom_ops/paddle/flashmask_op.cc (-DPADDLE_WITH_CUDA)"
g++ -O2 -std=c++17 -fPIC -DPADDLE_WITH_CUDA -D_GLIBCXX_USE_CXX11_ABI=1 -DFLASHMASK_WITH_CUDA \
    -DPADDLE_EXTENSION_NAME=_flashmask_ops -I"$ROOT/custom_ops" $INC -w \
    -c "$ROOT/custom_ops/paddle/flashmask_op.cc" -o "$OBJ/flashmask_op.o"
step "all compiled: $(ls "$OBJ" | tr '\n' ' ')"

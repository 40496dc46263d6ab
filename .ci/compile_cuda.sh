#!/usr/bin/env bash
# CI compile check of the CUDA build (no GPU, no Paddle GPU wheel needed):
# checks the generated files are fresh, compiles (-c only) the CUDA sources'
# small units and one instantiation per kernel family
# (sm80 forward and backward, sm90a forward and backward: bf16, head_dim 128) with the
# flags of custom_ops/build_flags.py (sm_80 + sm_90a), plus the C ABI and the
# Paddle CUDA adapter with -DPADDLE_WITH_CUDA. Paddle's headers
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
t0=$(date +%s)
step() { echo "[$(( $(date +%s) - t0 ))s] $*"; }

# CuTe/CUTLASS headers for the sm90a kernels: the nvidia-cutlass wheel's
# include/ tree (downloaded and unzipped, not installed: its Python
# dependencies are not needed to compile)
CUT=$WORK/cutlass
if [ ! -d "$CUT/cutlass_library/source/include/cute" ]; then
  step "fetch CUTLASS headers (nvidia-cutlass wheel)"
  $PY -m pip download -q --no-deps --only-binary=:all: -d "$CUT/wheel" nvidia-cutlass 2>&1 | grep -v "^WARNING" || true
  (cd "$CUT" && unzip -q -o wheel/*.whl 'cutlass_library/source/include/*')
fi
export FLASHMASK_CUTLASS_INCLUDE=$CUT/cutlass_library/source/include
# the flags setup.py and custom_ops/torch/build.py use: sm_80 + sm_90a, sm90 kernels on
NVFLAGS=$(cd "$ROOT" && $PY -c "from custom_ops.build_flags import nvcc_flags, with_sm90
assert with_sm90('.'), 'CUTLASS headers not found: the sm90a kernels would be left out'
print(' '.join(nvcc_flags('$ROOT')))")
echo "nvcc flags: $NVFLAGS"

# 0. the generated instantiation units and kernel tables match their table
step "generate_kernels.py --check"
(cd "$ROOT" && $PY custom_ops/generate_kernels.py --check)

# 1. CUDA kernels: the small units and one instantiation per family
#    (sm80 forward, sm80 backward, sm90a forward, sm90a backward: key-split
#    d128 and head-dim-split d256)
CU=custom_ops/core/cuda
for src in dispatch/dispatch.cu prep/mask_bounds.cu common/sink_grad.cu sm80/bwd/prepost.cu sm90/fwd/entry.cu sm90/bwd/entry.cu \
           instantiations/fwd_sm80_bf16_d128.cu instantiations/bwd_sm80_bf16_d128.cu \
           instantiations/fwd_sm90_bf16_d128.cu instantiations/bwd_sm90_bf16_d128.cu \
           instantiations/bwd_sm90_bf16_d256.cu; do
  step "nvcc $src"
  $NVCC $NVFLAGS -c "$ROOT/$CU/$src" -o "$OBJ/$(echo "$src" | tr / _).o"
done
# the dispatcher links against every instantiation: check they all parse
# (host-only syntax pass, no device code generation)
INSTS="$(ls "$ROOT"/$CU/instantiations/*.cu)"
for src in $INSTS; do
  $NVCC -std=c++17 --expt-relaxed-constexpr -DFLASHMASK_WITH_CUDA -DFLASHMASK_WITH_SM90 -I"$ROOT/custom_ops" \
    -I"$FLASHMASK_CUTLASS_INCLUDE" -E "$src" -o /dev/null
done
step "preprocessed all $(echo "$INSTS" | wc -l) instantiation units"
# host unit tests (run on the CPU) of the sm90 mask logic, built with the
# product's flags minus the device code generation
HOSTFLAGS="-std=c++17 --expt-relaxed-constexpr -DFLASHMASK_WITH_CUDA -I$ROOT/custom_ops -I$FLASHMASK_CUTLASS_INCLUDE"
# the sm90 backward's column walk (runs of one block kind, block-mask words)
# visits exactly what the plain loop visits
step "walk_host_test (sm90 backward column walk)"
$NVCC $HOSTFLAGS "$ROOT/tests/gpu/standalone/sm90_bwd/walk_host_test.cu" -o "$WORK/walk_host_test"
"$WORK/walk_host_test"
# the sm90 forward's block kinds and element masks against mask_bounds.h
step "mask_host_test (sm90 forward block kinds, column intervals, row bits, causal-only rule)"
$NVCC $HOSTFLAGS "$ROOT/tests/gpu/standalone/sm90_fwd/mask_host_test.cu" -o "$WORK/mask_host_test"
"$WORK/mask_host_test"

# the dispatcher's batch slices (grids take 65535 batches): pointers and offsets
step "batch_slices_host_test (dispatch/batch_chunks.h)"
g++ -std=c++17 -Wall -I"$ROOT/custom_ops" "$ROOT/tests/gpu/standalone/dispatch/batch_slices_host_test.cc" \
    -o "$WORK/batch_slices_host_test"
"$WORK/batch_slices_host_test"

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

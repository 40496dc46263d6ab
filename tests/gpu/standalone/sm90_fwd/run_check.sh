#!/usr/bin/env bash
# Device-side check of the sm90a forward, independent of the torch/Paddle doors.
# Run from the repository root on the H100/H200 machine, with .device_build/sm90
# carried (prebuilt objects):
#   bash tests/gpu/standalone/sm90_fwd/run_check.sh        (NO_BENCH=1: checks only)
# Relinks the checker from the prebuilt objects when the binary is missing;
# REBUILD=1 recompiles every object there first (16 cores: ~1 minute).
set -u
B=.device_build/sm90
OUT=${OUT:-/tmp/sm90_out}; mkdir -p "$OUT"
NVCC=${CUDA_HOME:-/usr/local/cuda}/bin/nvcc
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader | tee "$OUT/gpu.txt"
if [ "${REBUILD:-0}" = 1 ]; then
  F="$(python -c "from custom_ops.build_flags import nvcc_flags; print(' '.join(nvcc_flags('.', ['90'])))") -Xptxas=-v"
  pids=""
  for s in custom_ops/core/cuda/instantiations/fwd_sm90_*.cu custom_ops/core/cuda/sm90/fwd/entry.cu tests/gpu/standalone/sm90_fwd/check_fwd_sm90.cu; do
    $NVCC $F -c $s -o $B/$(basename ${s%.cu}).o > "$OUT/build_$(basename ${s%.cu}).log" 2>&1 & pids="$pids $!"
  done
  $NVCC $F -c custom_ops/core/cuda/prep/mask_bounds.cu -o $B/prep_for_check.o > "$OUT/build_prep.log" 2>&1 & pids="$pids $!"
  for p in $pids; do wait $p || { echo "build failed"; tail -30 "$OUT"/build_*.log; exit 1; }; done
  rm -f $B/check_fwd_sm90
fi
if [ ! -x $B/check_fwd_sm90 ]; then
  $NVCC -gencode=arch=compute_90a,code=sm_90a $B/check_fwd_sm90.o $B/entry.o $B/fwd_sm90_*_d*.o \
    $B/prep_for_check.o -o /tmp/check_fwd_sm90 || exit 1
  CHECK=/tmp/check_fwd_sm90
else
  CHECK=$B/check_fwd_sm90
fi
# one process per case: a hang (exit 3, from the checker's 10 s watchdog)
# costs that case only; two hangs stop the loop (the kernel is then broken
# everywhere, no point burning device time)
fails=0; hangs=0
for i in $(seq 0 99); do
  timeout 60 $CHECK --case $i --no-bench "$@" 2>&1 | tee -a "$OUT/check.log"
  rc=${PIPESTATUS[0]}
  [ $rc = 4 ] && break
  [ $rc = 3 ] && hangs=$((hangs + 1))
  [ $rc != 0 ] && fails=$((fails + 1))
  if [ $hangs -ge 2 ]; then echo "two hangs: stopping"; break; fi
done
echo "check: $fails failing cases, $hangs hangs" | tee -a "$OUT/check.log"
if [ $fails = 0 ] && [ "${NO_BENCH:-0}" != 1 ]; then
  timeout ${BENCH_TIMEOUT:-150} $CHECK --bench-only 2>&1 | tee "$OUT/bench.log"
  echo "bench rc=${PIPESTATUS[0]}"
fi

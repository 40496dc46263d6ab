#!/usr/bin/env bash
# Device-side check of the sm90a backward, independent of the torch/Paddle doors.
# Run from the repository root on the H100/H200 machine with .device_build/sm90bwd
# carried (prebuilt objects, the sm90 forward objects under fwd/ for the
# fwd+bwd bench, cutlass_include.tgz):
#   bash tests/gpu/standalone/sm90_bwd/run_check.sh      (NO_BENCH=1: checks only)
#   SYNCCHECK=1 ...: first case 0 under compute-sanitizer synccheck + racecheck
#   (SAN_CASE=i for another case), then the normal loop.
# Links the checker from the prebuilt objects; REBUILD=1 recompiles every
# object on the device first (16 cores, ~1-2 minutes), forward included.
# Each check case runs in its own process (the checker's 10 s watchdog exits 3
# on a hang); two hangs stop the loop.
set -u
B=.device_build/sm90bwd
OUT=${OUT:-/tmp/sm90bwd_out}; mkdir -p "$OUT"
NVCC=${CUDA_HOME:-/usr/local/cuda}/bin/nvcc
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader | tee "$OUT/gpu.txt"
ARCH="-gencode=arch=compute_90a,code=sm_90a"
if [ "${REBUILD:-0}" = 1 ]; then
  F="$(python -c "from custom_ops.build_flags import nvcc_flags; print(' '.join(nvcc_flags('.', ['90'])))") -Xptxas=-v"
  mkdir -p $B/fwd
  pids=""
  for s in custom_ops/core/cuda/instantiations/bwd_sm90_*.cu custom_ops/core/cuda/sm90/bwd/entry.cu; do
    $NVCC $F -c $s -o $B/$(basename ${s%.cu}).o > "$OUT/build_$(basename ${s%.cu}).log" 2>&1 & pids="$pids $!"
  done
  for s in custom_ops/core/cuda/instantiations/fwd_sm90_*.cu custom_ops/core/cuda/sm90/fwd/entry.cu; do
    $NVCC $F -c $s -o $B/fwd/$(basename ${s%.cu}).o > "$OUT/build_fwd_$(basename ${s%.cu}).log" 2>&1 & pids="$pids $!"
  done
  $NVCC $F -DWITH_FWD -c tests/gpu/standalone/sm90_bwd/check_bwd_sm90.cu -o $B/check_bwd_sm90_fwd.o \
    > "$OUT/build_check.log" 2>&1 & pids="$pids $!"
  $NVCC $F -c custom_ops/core/cuda/prep/mask_bounds.cu -o $B/prep_for_check.o > "$OUT/build_prep.log" 2>&1 & pids="$pids $!"
  for p in $pids; do wait $p || { echo "build failed"; tail -30 "$OUT"/build_*.log; exit 1; }; done
  grep -h "spill" "$OUT"/build_bwd_sm90_*.log | sort | uniq -c
fi
CHECK=/tmp/check_bwd_sm90
if ls $B/fwd/entry.o > /dev/null 2>&1 && [ -f $B/check_bwd_sm90_fwd.o ]; then
  $NVCC $ARCH $B/check_bwd_sm90_fwd.o $B/entry.o $B/bwd_sm90_*_d*.o $B/fwd/*.o $B/prep_for_check.o -o $CHECK || exit 1
else
  $NVCC $ARCH $B/check_bwd_sm90.o $B/entry.o $B/bwd_sm90_*_d*.o $B/prep_for_check.o -o $CHECK || exit 1
fi
$CHECK --list | tee "$OUT/cases.txt"
# SYNCCHECK=1: first run case 0 (one CTA) under compute-sanitizer synccheck and
# racecheck, 60 s each (the checker's own watchdog raised to 50 s so it reports
# HANG itself before `timeout` kills the sanitizer). Logs: $OUT/sanitizer_*.log.
if [ "${SYNCCHECK:-0}" = 1 ]; then
  SAN=${CUDA_HOME:-/usr/local/cuda}/bin/compute-sanitizer
  [ -x "$SAN" ] || SAN=$(command -v compute-sanitizer || echo compute-sanitizer)
  for tool in synccheck racecheck; do
    echo "=== compute-sanitizer --tool $tool case ${SAN_CASE:-0}" | tee "$OUT/sanitizer_$tool.log"
    CHECK_WATCHDOG_S=50 timeout -s INT -k 10 60 "$SAN" --tool $tool --print-limit 50 \
      $CHECK --case ${SAN_CASE:-0} --no-bench >> "$OUT/sanitizer_$tool.log" 2>&1
    echo "$tool rc=$? (124: timed out = still hangs)" >> "$OUT/sanitizer_$tool.log"
    tail -40 "$OUT/sanitizer_$tool.log"
  done
fi
fails=0; hangs=0
for i in $(seq 0 99); do
  [ -n "${CASES:-}" ] && ! echo " $CASES " | grep -q " $i " && continue
  timeout 90 $CHECK --case $i --no-bench 2>&1 | grep -v "^device" | tee -a "$OUT/check.log"
  rc=${PIPESTATUS[0]}
  [ $rc = 4 ] && break
  [ $rc = 3 ] && hangs=$((hangs + 1))
  [ $rc != 0 ] && { fails=$((fails + 1)); echo "case $i rc=$rc" | tee -a "$OUT/check.log"; }
  if [ $hangs -ge 2 ]; then echo "two hangs: stopping"; break; fi
done
echo "check: $fails failing cases, $hangs hangs" | tee -a "$OUT/check.log"
if [ $fails = 0 ] && [ "${NO_BENCH:-0}" != 1 ]; then
  timeout ${BENCH_TIMEOUT:-150} $CHECK --bench-only 2>&1 | tee "$OUT/bench.log"
  echo "bench rc=${PIPESTATUS[0]}"
fi

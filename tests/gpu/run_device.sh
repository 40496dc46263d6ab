#!/usr/bin/env bash
# One device call: build the torch door (reusing .device_build objects, which
# tools/device_prep.sh compiles on the CPU box with everything else carried),
# then the steps named in $STEPS (default: test sanitize bench), logs to $OUT.
#   STEPS="test" bash tests/gpu/run_device.sh
#   STEPS=suite SUITE_SEQLENS=8192 bash tests/gpu/run_device.sh   (carry .anchors/fmv3.tgz for the V3 baseline)
#   STEPS=vs_fmv3 VS_SEQLENS="8192 32768" bash tests/gpu/run_device.sh
#   STEPS=ab AB_VARIANTS="name ..." bash tests/gpu/run_device.sh   (variants from tools/ab_tree.sh)
#   TREE=name STEPS="test memcheck" bash tests/gpu/run_device.sh   (the steps on that variant's kernels)
set -u
OUT=${OUT:-/tmp/fm_out}; mkdir -p "$OUT"
STEPS=${STEPS:-"test memcheck racecheck bench"}
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD:${PYTHONPATH:-}
nvidia-smi --query-gpu=name,driver_version,clocks.sm --format=csv,noheader | tee "$OUT/gpu.txt"
python custom_ops/torch/build.py --jobs 16 --archs 90 > "$OUT/build.log" 2>&1 || { tail -50 "$OUT/build.log"; exit 1; }
tail -3 "$OUT/build.log"
# A variant of tools/ab_tree.sh linked in .device_build/ab/$1 (the objects it shares with this
# tree copied in there first, with the headers); its log is $OUT/ab_build_$1.log.
build_variant() {
  cp -n .device_build/core/* .device_build/ab/$1/.device_build/core/ 2>/dev/null
  mkdir -p .device_build/ab/$1/.device_build/sm90 && cp .device_build/sm90/cutlass_include.tgz .device_build/ab/$1/.device_build/sm90/
  (cd .device_build/ab/$1 && python custom_ops/torch/build.py --jobs 16 --archs 90) > "$OUT/ab_build_$1.log" 2>&1 && return 0
  echo "build of variant $1 failed"; tail -20 "$OUT/ab_build_$1.log"; return 1
}
# TREE=name: every step runs on that variant's door instead of this tree's (a variant differs in
# custom_ops only, so the Python layer is the same): its tests and sanitizers before it is merged
if [ -n "${TREE:-}" ]; then
  build_variant "$TREE" || exit 1
  cp .device_build/ab/$TREE/paddle_flashmask/torch/_flashmask_torch.so paddle_flashmask/torch/_flashmask_torch.so
  echo "steps on variant $TREE"
fi
# The official V3 baseline (../shared/anchors/fmv3/README.md) from a carried .anchors/fmv3 (31 MB)
# or .anchors/fmv3.tgz (3 MB: tar czf .anchors/fmv3.tgz -C .anchors fmv3). The kit reuses the kernel
# objects compiled on the CPU box only if its nvcc flags match: build them there with the same
# FMV3_INST and CUDA_HOME (build.sh kernels). False (and the log's tail) when it cannot be built.
build_fmv3() {
  # (a warm machine may keep a partial .anchors/fmv3 from an earlier call: unpack over it)
  [ ! -f .anchors/fmv3/build.sh ] && [ -f .anchors/fmv3.tgz ] && tar xzf .anchors/fmv3.tgz -C .anchors
  [ -f .anchors/fmv3/build.sh ] || { echo "no .anchors/fmv3 carried: no V3 baseline"; return 1; }
  if FMV3_INST=.anchors/fmv3/inst CUDA_HOME=${CUDA_HOME:-/usr/local/cuda} timeout ${FMV3_BUILD_TIMEOUT:-240} \
      bash .anchors/fmv3/build.sh > "$OUT/fmv3_build.log" 2>&1; then
    grep -E "^\[(time|load)\]" "$OUT/fmv3_build.log"; return 0
  fi
  echo "fmv3 build failed (runs without V3):"; tail -8 "$OUT/fmv3_build.log"; return 1
}

for step in $STEPS; do
  case $step in
    test)
      # 854 cases in ~55 s on an H100, ~75 s on an H200 (2026-12-07)
      timeout ${TEST_TIMEOUT:-300} python -m pytest tests/gpu -q --maxfail=20 -p no:cacheprovider ${PYTEST_ARGS:-} \
        > "$OUT/pytest.log" 2>&1
      echo "pytest rc=$?"; tail -25 "$OUT/pytest.log" ;;
    det)
      FLASHMASK_DETERMINISTIC=1 timeout 120 python -m pytest tests/gpu -q -k "deterministic or layouts" -p no:cacheprovider > "$OUT/pytest_det.log" 2>&1
      echo "pytest det rc=$?"; tail -5 "$OUT/pytest_det.log" ;;
    memcheck|racecheck|synccheck)
      # compute-sanitizer's tool of that name over tests/gpu/sanitize_cases.py (memcheck: every case)
      quick=--quick; [ $step = memcheck ] && quick=""
      timeout ${SAN_TIMEOUT:-150} compute-sanitizer --tool $step --error-exitcode 9 python tests/gpu/sanitize_cases.py $quick > "$OUT/$step.log" 2>&1
      echo "$step rc=$?"; tail -4 "$OUT/$step.log" ;;
    ncu)
      # ours (sm80 kernels: FLASHMASK_DISABLE_SM90=1 on Hopper) next to FA2 (SDPA flash), causal.
      FLASHMASK_DISABLE_SM90=1 timeout ${NCU_TIMEOUT:-150} ncu --profile-from-start off -k regex:"fwd_kernel|dkdv|flash_fwd|flash_bwd" \
        --section SpeedOfLight --section WarpStateStats --section ComputeWorkloadAnalysis \
        --section MemoryWorkloadAnalysis_Tables --section Occupancy --section LaunchStats --section InstructionStats \
        --metrics "regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio" \
        python tools/profile_case.py > "$OUT/ncu.txt" 2>&1
      echo "ncu rc=$?"; grep -E "^  [a-z_].*\(|Duration|Compute \(SM\) Throughput|Achieved Occupancy|Registers Per|Shared Memory Configuration Size|Issue Slots Busy" "$OUT/ncu.txt" | head -60 ;;
    ncusrc)
      # per-SASS-instruction stall samples of the same kernels (analyse here or anywhere with
      # tools/ncu_stalls.py $OUT/src.csv --kernel dkdv2 --by stall_long_sb)
      FLASHMASK_DISABLE_SM90=1 timeout ${NCU_TIMEOUT:-200} ncu --profile-from-start off \
        -k regex:"fwd_kernel|dkdv|flash_fwd_kernel|flash_bwd_dq_dk" --section SourceCounters --section WarpStateStats \
        -o "$OUT/prof" python tools/profile_case.py > "$OUT/ncusrc.txt" 2>&1
      ncu --import "$OUT/prof.ncu-rep" --page source --print-source sass --csv > "$OUT/src.csv" 2>> "$OUT/ncusrc.txt"
      echo "ncusrc rc=$?"; python tools/ncu_stalls.py "$OUT/src.csv" --top 0 ;;
    ncu90)
      # The Hopper backward (and NCU_KERNEL=fwd_kernel_sm90 for the forward) on the suite's shapes.
      timeout ${NCU_TIMEOUT:-240} ncu --profile-from-start off -k regex:${NCU_KERNEL:-bwd_kernel_sm90} \
        --section SpeedOfLight --section WarpStateStats --section SchedulerStats --section ComputeWorkloadAnalysis \
        --section MemoryWorkloadAnalysis --section Occupancy --section SourceCounters \
        --metrics "regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio" \
        python tools/profile_masks.py --backward --masks ${NCU_MASKS:-causal sliding_window} > "$OUT/ncu90.txt" 2>&1
      echo "ncu90 rc=$?"; grep -E "^  [a-z_].*\(|Duration|Compute \(SM\) Throughput|Issue Slots Busy|No Eligible|Active Warps Per|Eligible Warps" "$OUT/ncu90.txt" | head -40 ;;
    ncuv3)
      # #29: our Hopper backward and V3's on the same inputs (d128 bf16, NCU_MASKS): the sections and
      # per-SASS stall samples; the CSVs are read anywhere: tools/ncu_stalls.py $OUT/ncuv3_src.csv
      build_fmv3 || continue
      timeout ${NCU_TIMEOUT:-300} ncu --profile-from-start off --kernel-name-base demangled \
        -k regex:"bwd_kernel_sm90|FlashAttnBwdSm90" --section SpeedOfLight --section WarpStateStats \
        --section SchedulerStats --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis \
        --section MemoryWorkloadAnalysis_Tables --section InstructionStats --section Occupancy \
        --section LaunchStats --section SourceCounters --import-source no -f -o "$OUT/ncuv3" \
        python tools/profile_masks.py --backward --masks ${NCU_MASKS:-causal} --fmv3 .anchors/fmv3/build \
        > "$OUT/ncuv3.txt" 2>&1
      echo "ncuv3 rc=$?"; tail -3 "$OUT/ncuv3.txt"
      ncu --import "$OUT/ncuv3.ncu-rep" --page details --csv > "$OUT/ncuv3_details.csv" 2>> "$OUT/ncuv3.txt"
      ncu --import "$OUT/ncuv3.ncu-rep" --page source --print-source sass --csv > "$OUT/ncuv3_src.csv" 2>> "$OUT/ncuv3.txt"
      python tools/ncu_stalls.py "$OUT/ncuv3_src.csv" --top 0 ;;
    clocks)
      # SM clock and board power while each backward runs back to back (ours, and V3 when built):
      # ncu locks the clock, the benchmarks do not
      v3=""; { [ -f .anchors/fmv3/build/flashmask_C.so ] || build_fmv3; } && v3="--fmv3 .anchors/fmv3/build"
      timeout ${CLOCKS_TIMEOUT:-150} python tools/profile_masks.py --backward --masks ${NCU_MASKS:-causal} $v3 \
        --clocks ${CLOCKS_SECONDS:-4} > "$OUT/clocks.txt" 2>&1
      echo "clocks rc=$?"; grep -E "MHz|Error" "$OUT/clocks.txt" ;;
    kernels)
      # tools/kernel_times.py: per-kernel time of block_mask (f = 1, 0.1, 0) and MLA fwd+bwd
      timeout ${KT_TIMEOUT:-180} python tools/kernel_times.py ${KT_ARGS:---mla} > "$OUT/kernel_times.log" 2>&1
      echo "kernels rc=$?"; cat "$OUT/kernel_times.log" | head -80 ;;
    bench)
      timeout ${BENCH_TIMEOUT:-300} python benchmarks/gpu_bench.py ${BENCH_ARGS:-} > "$OUT/bench.log" 2>&1
      echo "bench rc=$?"; tail -22 "$OUT/bench.log" ;;
    features)
      # benchmarks/features_gpu.py: the sink's cost, block_mask scaling, MLA shapes against Flex
      timeout ${FEAT_TIMEOUT:-240} python benchmarks/features_gpu.py run --seqlens ${FEAT_SEQLENS:-8192} ${FEAT_ARGS:-} \
        --json "$OUT/features.json" > "$OUT/features.log" 2>&1; echo "features rc=$?"; tail -14 "$OUT/features.log" ;;
    vs_fmv3)
      # benchmarks/vs_fmv3.py: ours against V3 in alternating rounds at each of VS_SEQLENS
      build_fmv3 && for s in ${VS_SEQLENS:-8192}; do
        timeout ${VS_TIMEOUT:-300} python benchmarks/vs_fmv3.py run --fmv3 .anchors/fmv3/build --seqlen $s \
          ${VS_ARGS:-} --json "$OUT/vs_fmv3_$s.json" 2>&1 | tee "$OUT/vs_fmv3_$s.log" | tail -14
      done ;;
    ab)
      # benchmarks/ab_builds.py: this tree's build (BASE) against each variant
      # prebuilt by tools/ab_tree.sh (NEW), linked here, at each of AB_SEQLENS and
      # AB_HEAD_DIMS (default 128), and with AB_DET=1 also each deterministic backward
      for v in ${AB_VARIANTS:-}; do
        build_variant $v || continue
        for s in ${AB_SEQLENS:-8192}; do
          for d in ${AB_HEAD_DIMS:-128}; do
            for det in "" ${AB_DET:+--deterministic}; do
              tag=${v}_${s}_d$d${det:+_det}
              echo "== ab $v, S = $s, d = $d ${det}"
              timeout ${AB_TIMEOUT:-200} python benchmarks/ab_builds.py run paddle_flashmask/torch/_flashmask_torch.so \
                .device_build/ab/$v/paddle_flashmask/torch/_flashmask_torch.so --seqlen $s --head-dim $d $det \
                ${AB_ARGS:-} --json "$OUT/ab_$tag.json" 2>&1 | tail -16
            done
          done
        done
      done ;;
    suite)
      # benchmarks/mask_suite.py at SUITE_SEQLENS (all twelve masks unless SUITE_MASKS), with the
      # official V3 when its kit was carried (build_fmv3); a failed V3 build only drops it.
      # SUITE_KV_HEADS: a GQA run (V3 is MHA-only: not built).
      # The JSON is rewritten after every config, so a timeout keeps what ran.
      impls=${SUITE_IMPLS:-"flashmask flex cudnn"}; fmv3=""
      if [ -z "${SUITE_KV_HEADS:-}" ] && build_fmv3; then impls="$impls fmv3"; fmv3="--fmv3 .anchors/fmv3/build"; fi
      seqlens=${SUITE_SEQLENS:-8192}
      tag=$(echo $seqlens | tr ' ' _)${SUITE_KV_HEADS:+_gqa$SUITE_KV_HEADS}
      timeout ${SUITE_TIMEOUT:-420} python benchmarks/mask_suite.py run --seqlens $seqlens \
        ${SUITE_MASKS:+--masks $SUITE_MASKS} ${SUITE_KV_HEADS:+--kv-heads $SUITE_KV_HEADS} --impls $impls $fmv3 \
        --warmup 1 --extra-head-dims ${SUITE_ARGS:-} --json "$OUT/suite_$tag.json" > "$OUT/suite_$tag.log" 2>&1
      echo "suite rc=$? ($OUT/suite_$tag.json)"; grep -iE "error|Traceback" "$OUT/suite_$tag.log" | tail -5
      # the tables, without writing RESULTS.md here (report that JSON where it is merged)
      python -c "import json, sys; sys.path.insert(0, 'benchmarks'); import mask_suite as m;
d = json.load(open(sys.argv[1])); print(m.markdown(d['rows'], [d['meta']]))" "$OUT/suite_$tag.json" \
        > "$OUT/suite_$tag.md" 2>&1; sed -n '/^### /,$p' "$OUT/suite_$tag.md" ;;
  esac
done

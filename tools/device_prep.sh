#!/usr/bin/env bash
# What a device call carries, compiled here on the CPU box (2 cores: ~8 min for
# the objects from nothing, ~6 more for the V3 baseline), so the device only
# links (tests/gpu/run_device.sh):
#   bash tools/device_prep.sh [FA_GIT_DIR CUTLASS_GIT_DIR]
# 1. .device_build/sm90/cutlass_include.tgz: the CUTLASS headers of the
#    nvidia-cutlass wheel (the device has no network; build_flags.py unpacks it)
# 2. .device_build/core: every kernel object (custom_ops/torch/build.py
#    --objects-only; an unchanged source is not rebuilt)
# 3. with the two git dirs (the `fetch` of PaddlePaddle/flash-attention and
#    NVIDIA/cutlass): .anchors/fmv3.tgz, the official FlashMask V3 baseline
#    (../shared/anchors/fmv3/README.md; never committed)
# Then carry .device_build/core, .device_build/sm90/cutlass_include.tgz and,
# for the V3 steps, .anchors/fmv3.tgz (plus .device_build/ab from
# tools/ab_tree.sh for an A/B). Uses the `python` on PATH (the dev venv).
set -eu
root=$(git rev-parse --show-toplevel)
cd "$root"
jobs=${JOBS:-2}

tgz=.device_build/sm90/cutlass_include.tgz
if [ ! -f "$tgz" ]; then
  tmp=$(mktemp -d)
  python -m pip download -q --no-deps --only-binary=:all: -d "$tmp" nvidia-cutlass
  (cd "$tmp" && python -m zipfile -e nvidia_cutlass-*.whl unpacked)
  mkdir -p .device_build/sm90
  tar czf "$tgz" -C "$tmp/unpacked/cutlass_library/source/include" .
  rm -rf "$tmp"
fi
echo "headers: $tgz ($(du -h "$tgz" | cut -f1))"

python custom_ops/torch/build.py --objects-only --jobs "$jobs" --archs 90 | tail -1
echo "objects: .device_build/core ($(du -sh .device_build/core | cut -f1))"

if [ $# -ge 2 ]; then
  grep -qx "/.anchors/" .git/info/exclude 2>/dev/null || { mkdir -p .git/info; echo /.anchors/ >> .git/info/exclude; }
  [ -f .anchors/fmv3/build.sh ] || bash ../shared/anchors/fmv3/prepare.sh "$1" "$2"
  bash .anchors/fmv3/build.sh kernels
  tar czf .anchors/fmv3.tgz -C .anchors fmv3
  echo "V3 baseline: .anchors/fmv3.tgz ($(du -h .anchors/fmv3.tgz | cut -f1))"
fi

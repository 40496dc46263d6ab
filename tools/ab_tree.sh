#!/usr/bin/env bash
# A kernel variant for a same-run A/B on the device (benchmarks/ab_builds.py),
# compiled here and carried there:
#   bash tools/ab_tree.sh BRANCH NAME
# writes .device_build/ab/NAME: BRANCH's custom_ops/ and its core objects
# (this tree's .device_build/core objects are reused where their stamps match,
# so only what BRANCH changes is compiled). On the device:
#   STEPS=ab AB_VARIANTS="NAME ..." bash tests/gpu/run_device.sh
# with .device_build/core, .device_build/sm90/cutlass_include.tgz and
# .device_build/ab carried. A variant keeps only the objects that differ from
# this tree's (the ab step copies the rest in there): 1-3 MB for a change to
# one kernel family.
set -eu
branch=$1 name=$2
root=$(git rev-parse --show-toplevel)
dest=$root/.device_build/ab/$name
rm -rf "$dest"
mkdir -p "$dest/paddle_flashmask/torch" "$dest/.device_build/sm90"
git -C "$root" archive "$branch" custom_ops | tar x -C "$dest"
# tar keeps the commit's time: a commit made just before this would count as
# a source edited during the compile, and build.py would not stamp the object
find "$dest/custom_ops" -type f -exec touch -d "@$(($(date +%s) - 10))" {} +
cp -r "$root/.device_build/core" "$dest/.device_build/"
cp "$root/.device_build/sm90/cutlass_include.tgz" "$dest/.device_build/sm90/"
(cd "$dest" && python custom_ops/torch/build.py --objects-only --archs 90 --jobs "${JOBS:-2}")
rm -rf "$dest/.device_build/sm90" "$dest"/.device_build/core/*.d
for obj in "$dest"/.device_build/core/*.o; do
  base=$root/.device_build/core/$(basename "$obj")
  if cmp -s "$obj" "$base"; then rm "$obj" "$obj.stamp"; fi
done
du -sh "$dest"

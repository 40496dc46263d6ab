// Prints the compile-time configuration of every sm90 instantiation (tile
// shape, stages, threads, register split, shared memory bytes). Host only.
#include <cstdio>

#include "core/cuda/sm90/fwd/traits.h"

using namespace flashmask::cuda::sm90;

template <typename E, int D>
void show(const char* name) {
  using T = FwdTraits<E, D>;
  std::printf("%s d%-3d BM=%d BN=%d stages=%d meta_stages=%d threads=%d regs producer/consumer=%d/%d smem=%d B (%.1f KB)\n",
              name, D, T::kBlockM, T::kBlockN, T::kStages, T::kMetaStages, T::kNumThreads, T::kProducerRegs,
              T::kConsumerRegs, T::kSmemBytes, T::kSmemBytes / 1024.0);
}

int main() {
  show<cutlass::bfloat16_t, 64>("bf16");
  show<cutlass::bfloat16_t, 128>("bf16");
  show<cutlass::bfloat16_t, 256>("bf16");
  show<cutlass::half_t, 64>("fp16");
  show<cutlass::half_t, 128>("fp16");
  show<cutlass::half_t, 256>("fp16");
  return 0;
}

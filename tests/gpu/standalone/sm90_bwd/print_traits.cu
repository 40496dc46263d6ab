// Prints the sm90 backward configurations (tiles, smem, register split).
#include <cstdio>

#include "core/cuda/sm90/bwd/traits.h"

using namespace flashmask::cuda::sm90::bwd;

template <typename E, int D>
void row(const char* name) {
  using T = BwdTraits<E, D>;
  std::printf("%s d%d: BM %d BN %d stages %d, dQ split %s, regs producer %d consumer %d, smem %d B (%.1f KB)\n", name, D,
              T::kBlockM, T::kBlockN, T::kStages, T::kDqSplitM ? "M" : "D", T::kProducerRegs, T::kConsumerRegs,
              T::kSmemBytes, T::kSmemBytes / 1024.0);
}

int main() {
  row<cutlass::bfloat16_t, 64>("bf16");
  row<cutlass::bfloat16_t, 128>("bf16");
  row<cutlass::half_t, 64>("fp16");
  row<cutlass::half_t, 128>("fp16");
}

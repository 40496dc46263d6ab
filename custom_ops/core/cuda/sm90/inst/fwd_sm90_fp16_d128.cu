// sm90a forward, fp16, head_dim 128.
#include "../launch_sm90.cuh"

namespace flashmask {
namespace cuda {
namespace sm90 {
FLASHMASK_SM90_INSTANTIATE(cutlass::half_t, 128)
}  // namespace sm90
}  // namespace cuda
}  // namespace flashmask

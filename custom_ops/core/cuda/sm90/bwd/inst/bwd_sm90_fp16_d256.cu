// sm90a backward, fp16, head_dim 256.
#include "../launch_bwd_sm90.cuh"

namespace flashmask {
namespace cuda {
namespace sm90 {
namespace bwd {
FLASHMASK_SM90_BWD_INSTANTIATE(cutlass::half_t, 256)
}  // namespace bwd
}  // namespace sm90
}  // namespace cuda
}  // namespace flashmask

// Generated: one (dtype, head_dim) instantiation per unit keeps builds parallel.
#include "../bwd_launch.cuh"
namespace flashmask {
namespace cuda {
FLASHMASK_INSTANTIATE_BWD(__nv_bfloat16, 128)
}  // namespace cuda
}  // namespace flashmask

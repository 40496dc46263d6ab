// Generated: one (dtype, head_dim) instantiation per unit keeps builds parallel.
#include "../fwd_launch.cuh"
namespace flashmask {
namespace cuda {
FLASHMASK_INSTANTIATE_FWD(__half, 96)
}  // namespace cuda
}  // namespace flashmask

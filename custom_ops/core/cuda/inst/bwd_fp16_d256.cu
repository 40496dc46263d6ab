// Generated: one (dtype, head_dim) instantiation per unit keeps builds parallel.
#include "../bwd_launch.cuh"
namespace flashmask {
namespace cuda {
FLASHMASK_INSTANTIATE_BWD(__half, 256)
}  // namespace cuda
}  // namespace flashmask

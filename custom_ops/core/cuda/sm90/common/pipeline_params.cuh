// Parameters of a CUTLASS TMA pipeline (PipelineTmaAsync) as the sm90a
// forward and backward kernels set them up: warpgroup 0 produces (thread 0
// arms the transaction bytes), the consumer warpgroups consume.
#pragma once

#include <cutlass/pipeline/pipeline.hpp>

namespace flashmask {
namespace cuda {
namespace sm90 {

template <class Pipeline>
__device__ __forceinline__ typename Pipeline::Params tma_pipeline_params(int warp_group, uint32_t tx_bytes,
                                                                        int num_consumers) {
  typename Pipeline::Params params;
  params.transaction_bytes = tx_bytes;
  params.role = warp_group == 0 ? Pipeline::ThreadCategory::Producer : Pipeline::ThreadCategory::Consumer;
  params.is_leader = threadIdx.x == 0;
  params.num_consumers = num_consumers;
  return params;
}

}  // namespace sm90
}  // namespace cuda
}  // namespace flashmask

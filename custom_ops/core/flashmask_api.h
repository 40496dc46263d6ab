// The C ABI every door calls: plain structs in, status code out.
//
// Returns 0 on success; otherwise a nonzero code, with a message available
// from flashmask_last_error() on the calling thread.
#pragma once

#include "flashmask_params.h"

#ifdef __cplusplus
extern "C" {
#endif

enum FlashMaskDevice { kFlashMaskCPU = 0, kFlashMaskCUDA = 1 };

int flashmask_fwd(const flashmask::FwdParams* params, int device, void* stream);
int flashmask_bwd(const flashmask::BwdParams* params, int device, void* stream);
const char* flashmask_last_error(void);
// Whether this build carries the CUDA kernels.
int flashmask_has_cuda(void);

#ifdef __cplusplus
}
#endif

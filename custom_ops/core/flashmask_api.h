// The C ABI every door calls: plain structs in, status code out.
//
// Returns 0 on success; otherwise a nonzero code, with a message available
// from flashmask_last_error() on the calling thread.
#pragma once

#include <stddef.h>

#include "core/flashmask_params.h"

#ifdef __cplusplus
extern "C" {
#endif

enum FlashMaskDevice { kFlashMaskCPU = 0, kFlashMaskCUDA = 1 };

int flashmask_fwd(const flashmask::FwdParams* params, int device, void* stream);
int flashmask_bwd(const flashmask::BwdParams* params, int device, void* stream);
// Device workspace (bytes) a call needs; the door allocates it and sets
// params.workspace / workspace_bytes. 0 on the CPU (which allocates its own).
size_t flashmask_fwd_workspace_size(const flashmask::FwdParams* params, int device);
size_t flashmask_bwd_workspace_size(const flashmask::BwdParams* params, int device);
const char* flashmask_last_error(void);
// Whether this build carries the CUDA kernels.
int flashmask_has_cuda(void);

#ifdef __cplusplus
}
#endif

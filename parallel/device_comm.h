// The communicator a rank's backend needs. Host buffers (CPU ranks) use the job's MPI comm as
// it is. GPU ranks use NCCL when every rank on the node has a GPU of its own; when ranks must
// share a GPU (NCCL refuses two ranks on one device) or when asked, MPI with host staging.
#pragma once
#include <memory>
#include <string>

#include "parallel/comm.h"

namespace tessera {

class Backend;

enum class CommKind { Auto, Nccl, Mpi };

// "auto" | "nccl" | "mpi"; UserError otherwise.
CommKind parse_comm_kind(const std::string& s);

// Wraps `job` (MPI or single-rank) for `backend`. `gpus_on_node`: CUDA devices this rank can
// see (0 on the CPU). Writes what it chose to *chosen ("single rank", "mpi", "nccl",
// "mpi (host-staged)"). UserError when `kind` cannot work (nccl on CPU ranks, or on ranks
// that share a GPU).
std::unique_ptr<Comm> make_backend_comm(std::unique_ptr<Comm> job, Backend& backend,
                                        CommKind kind, int gpus_on_node, std::string* chosen);

// MPI on device tensors through host memory: download, MPI collective, upload back. The
// fallback for GPU ranks without NCCL; host tensors go straight to `host`.
std::unique_ptr<Comm> make_staged_comm(std::unique_ptr<Comm> host, Backend& backend);

#ifdef TESSERA_HAVE_CUDA
// NCCL over the job's ranks (parallel/comm_nccl.cu): rank 0's unique id is broadcast through
// `host`; device tensors are reduced on `cuda_stream` (the backend's), asynchronously like any
// kernel; host tensors and broadcasts (step plans) go through `host`. The current CUDA device
// must be this rank's.
std::unique_ptr<Comm> make_nccl_comm(std::unique_ptr<Comm> host, void* cuda_stream);
#endif

}  // namespace tessera

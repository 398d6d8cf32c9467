// Picks the communicator for a rank's backend (see device_comm.h).
#include "parallel/device_comm.h"

#include "runtime/backend.h"
#include "runtime/error.h"

namespace tessera {

CommKind parse_comm_kind(const std::string& s) {
  if (s == "auto") return CommKind::Auto;
  if (s == "nccl") return CommKind::Nccl;
  if (s == "mpi") return CommKind::Mpi;
  throw UserError("--comm must be auto, nccl or mpi (got '" + s + "')");
}

std::unique_ptr<Comm> make_backend_comm(std::unique_ptr<Comm> job, Backend& backend,
                                        CommKind kind, int gpus_on_node, std::string* chosen) {
  const World w = job->world();
  const bool gpu = backend.device() == Device::CUDA;
  if (kind == CommKind::Nccl && !gpu)
    throw UserError("--comm nccl needs GPU ranks (--device cuda); CPU ranks use MPI");
  // NCCL refuses two ranks on one device ("duplicate GPU"): ranks that share one use MPI.
  const bool shared_gpu = gpu && w.local_size > gpus_on_node;
  if (kind == CommKind::Nccl && shared_gpu)
    throw UserError("--comm nccl needs one GPU per rank, but " + std::to_string(w.local_size) +
                    " ranks share " + std::to_string(gpus_on_node) +
                    " GPU(s) on this node: use --comm mpi (host-staged) or fewer ranks");
  if (!gpu) {
    *chosen = w.size == 1 ? "single rank" : "mpi";
    return job;
  }
#ifdef TESSERA_HAVE_CUDA
  // A single rank needs no collectives (no NCCL communicator: it would only cost memory),
  // unless NCCL is asked for explicitly.
  if (kind == CommKind::Nccl || (kind == CommKind::Auto && w.size > 1 && !shared_gpu)) {
    *chosen = "nccl";
    return make_nccl_comm(std::move(job), backend.native_stream());
  }
#endif
  if (w.size == 1) {
    *chosen = "single rank";
    return job;
  }
  *chosen = "mpi (host-staged)";
  return make_staged_comm(std::move(job), backend);
}

}  // namespace tessera

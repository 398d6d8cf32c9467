// The MPI communicator: host buffers (CPU ranks, and the host-staged fallback for GPUs).
// One rank per process; world from MPI_COMM_WORLD, local rank from the node's shared-memory
// sub-communicator.
#include <mpi.h>

#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "parallel/comm.h"
#include "parallel/comm_mpi.h"
#include "runtime/dtype.h"

namespace tessera {
namespace {

void check(int rc, const char* what) {
  if (rc != MPI_SUCCESS) throw std::runtime_error(std::string("MPI ") + what + " failed");
}

class MpiComm final : public Comm {
 public:
  MpiComm() {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
      int provided = 0;
      check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided), "init");
      // MPI lives as long as the process, so a failing rank can still MPI_Abort the job
      // after its communicator objects are gone.
      std::atexit([] {
        int done = 0;
        MPI_Finalized(&done);
        if (!done) MPI_Finalize();
      });
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &world_.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world_.size);
    MPI_Comm local;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, world_.rank, MPI_INFO_NULL, &local);
    MPI_Comm_rank(local, &world_.local_rank);
    MPI_Comm_size(local, &world_.local_size);
    MPI_Comm_free(&local);
  }
  const World& world() const override { return world_; }

  void all_reduce_sum(Tensor& t) override {
    if (world_.size == 1) return;
    if (t.dtype == DType::F32) {
      check(MPI_Allreduce(MPI_IN_PLACE, t.data, int(t.numel()), MPI_FLOAT, MPI_SUM,
                          MPI_COMM_WORLD), "allreduce");
      return;
    }
    // F16/BF16: sum in F32 (MPI has no half types), round once.
    if (t.dtype != DType::F16 && t.dtype != DType::BF16)
      throw std::invalid_argument("all_reduce_sum: unsupported dtype");
    std::vector<float> f(size_t(t.numel()));
    uint16_t* h = t.ptr<uint16_t>();
    const bool bf = t.dtype == DType::BF16;
    for (size_t i = 0; i < f.size(); ++i) f[i] = bf ? bf16_to_f32(h[i]) : f16_to_f32(h[i]);
    check(MPI_Allreduce(MPI_IN_PLACE, f.data(), int(f.size()), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD),
          "allreduce");
    for (size_t i = 0; i < f.size(); ++i) h[i] = bf ? f32_to_bf16(f[i]) : f32_to_f16(f[i]);
  }

  void all_gather(const Tensor& in, Tensor& out) override {
    if (out.nbytes() != in.nbytes() * size_t(world_.size))
      throw std::invalid_argument("all_gather: out must be size x in");
    check(MPI_Allgather(in.data, int(in.nbytes()), MPI_BYTE, out.data, int(in.nbytes()), MPI_BYTE,
                        MPI_COMM_WORLD), "allgather");
  }

  void broadcast(void* data, size_t nbytes, int root) override {
    if (world_.size == 1) return;
    check(MPI_Bcast(data, int(nbytes), MPI_BYTE, root, MPI_COMM_WORLD), "broadcast");
  }

 private:
  World world_;
};

}  // namespace

bool launched_under_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS"})
    if (std::getenv(v)) return true;
  return false;
}

std::unique_ptr<Comm> make_mpi_comm() { return std::make_unique<MpiComm>(); }

}  // namespace tessera

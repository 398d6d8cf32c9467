// NCCL communicator for GPU ranks: device tensors are reduced / gathered by NCCL on the
// backend's stream (ordered with the kernels around them, and capturable in a CUDA graph);
// host tensors and broadcasts (step plans, the unique id) go through the host communicator.
#include <cuda_runtime.h>
#include <nccl.h>

#include <stdexcept>
#include <string>

#include "parallel/device_comm.h"

namespace tessera {
namespace {

void check_nccl(ncclResult_t r, const char* what) {
  if (r != ncclSuccess)
    throw std::runtime_error(std::string("NCCL ") + what + " failed: " + ncclGetErrorString(r));
}

ncclDataType_t nccl_type(DType t) {
  switch (t) {
    case DType::F32: return ncclFloat32;
    case DType::F16: return ncclFloat16;
    case DType::BF16: return ncclBfloat16;
    default: throw std::invalid_argument("NCCL all_reduce_sum: unsupported dtype");
  }
}

class NcclComm final : public Comm {
 public:
  NcclComm(std::unique_ptr<Comm> host, void* stream)
      : host_(std::move(host)), stream_(static_cast<cudaStream_t>(stream)) {
    const World& w = host_->world();
    ncclUniqueId id{};
    if (w.rank == 0) check_nccl(ncclGetUniqueId(&id), "get unique id");
    host_->broadcast(&id, sizeof id, 0);
    check_nccl(ncclCommInitRank(&comm_, w.size, id, w.rank), "communicator init");
  }
  ~NcclComm() override {
    cudaStreamSynchronize(stream_);
    ncclCommDestroy(comm_);
  }
  const World& world() const override { return host_->world(); }

  void all_reduce_sum(Tensor& t) override {
    if (t.device == Device::CPU) return host_->all_reduce_sum(t);
    check_nccl(ncclAllReduce(t.data, t.data, size_t(t.numel()), nccl_type(t.dtype), ncclSum,
                             comm_, stream_), "all_reduce");
  }

  void all_gather(const Tensor& in, Tensor& out) override {
    if (in.device == Device::CPU && out.device == Device::CPU) return host_->all_gather(in, out);
    if (in.device != Device::CUDA || out.device != Device::CUDA)
      throw std::invalid_argument("NCCL all_gather: in and out must both be device tensors");
    if (out.nbytes() != in.nbytes() * size_t(world().size))
      throw std::invalid_argument("all_gather: out must be size x in");
    check_nccl(ncclAllGather(in.data, out.data, in.nbytes(), ncclInt8, comm_, stream_),
               "all_gather");
  }

  void broadcast(void* data, size_t nbytes, int root) override {
    host_->broadcast(data, nbytes, root);
  }

 private:
  std::unique_ptr<Comm> host_;
  cudaStream_t stream_;
  ncclComm_t comm_ = nullptr;
};

}  // namespace

std::unique_ptr<Comm> make_nccl_comm(std::unique_ptr<Comm> host, void* cuda_stream) {
  return std::make_unique<NcclComm>(std::move(host), cuda_stream);
}

}  // namespace tessera

// Host-staged collectives: device tensors are copied to host memory, reduced or gathered by
// the host communicator (MPI), and copied back. Slower than NCCL (two PCIe copies and a
// synchronisation per collective) but it works wherever MPI does: ranks sharing one GPU,
// GPUs without peer access, a node without NCCL.
#include <stdexcept>

#include "parallel/device_comm.h"
#include "runtime/backend.h"

namespace tessera {
namespace {

class StagedComm final : public Comm {
 public:
  StagedComm(std::unique_ptr<Comm> host, Backend& backend)
      : host_(std::move(host)), backend_(backend) {}
  const World& world() const override { return host_->world(); }

  void all_reduce_sum(Tensor& t) override {
    if (t.device == Device::CPU || world().size == 1 || t.numel() == 0)
      return host_->all_reduce_sum(t);
    Tensor h = staging_like(t);
    backend_.download(t, h.data);
    host_->all_reduce_sum(h);
    backend_.upload_into(h.data, t);
  }

  void all_gather(const Tensor& in, Tensor& out) override {
    if (out.nbytes() != in.nbytes() * size_t(world().size))
      throw std::invalid_argument("all_gather: out must be size x in");
    Tensor hin = in, hout = out;
    if (in.device != Device::CPU) {
      hin = staging_like(in);
      backend_.download(in, hin.data);
    }
    if (out.device != Device::CPU) hout = staging_like(out);
    host_->all_gather(hin, hout);
    if (out.device != Device::CPU) backend_.upload_into(hout.data, out);
  }

  // Step plans and ids live in host memory.
  void broadcast(void* data, size_t nbytes, int root) override {
    host_->broadcast(data, nbytes, root);
  }

 private:
  // A host buffer of t's dtype and element count (the collectives read numel and dtype only).
  static Tensor staging_like(const Tensor& t) { return host_tensor(t.dtype, {t.numel()}); }

  std::unique_ptr<Comm> host_;
  Backend& backend_;
};

}  // namespace

std::unique_ptr<Comm> make_staged_comm(std::unique_ptr<Comm> host, Backend& backend) {
  return std::make_unique<StagedComm>(std::move(host), backend);
}

}  // namespace tessera

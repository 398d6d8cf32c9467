// Comm: the collectives tensor parallelism needs. NCCL for GPU ranks, MPI for CPU ranks,
// and the single-rank no-op here.
#pragma once
#include <memory>

#include "parallel/world.h"
#include "runtime/tensor.h"

namespace tessera {

class Comm {
 public:
  virtual ~Comm() = default;
  virtual const World& world() const = 0;
  // In place: t = sum over ranks of t (F32/F16/BF16).
  virtual void all_reduce_sum(Tensor& t) = 0;
  // out [size * n] = concatenation of every rank's in [n] (rank order).
  virtual void all_gather(const Tensor& in, Tensor& out) = 0;
  // Copies nbytes at data from root to every rank.
  virtual void broadcast(void* data, size_t nbytes, int root) = 0;
};

std::unique_ptr<Comm> make_single_comm();

}  // namespace tessera

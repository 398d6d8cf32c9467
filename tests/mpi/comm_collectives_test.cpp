// The communicators' collectives across real MPI ranks (run under mpirun -np N): MPI on host
// buffers, the host-staged comm on backend tensors, and on a GPU machine NCCL (one GPU per
// rank) or host staging (ranks sharing a GPU). Values are small integers, exact in every
// dtype, so sums are compared exactly.
#include <gtest/gtest.h>

#include <vector>

#include "parallel/comm_mpi.h"
#include "parallel/device_comm.h"
#include "runtime/backend.h"
#include "runtime/error.h"
#ifdef TESSERA_HAVE_CUDA
#include "runtime/cuda_probe.h"
#endif

namespace tessera::test {
namespace {

// rank r, element i -> r + 2 i: the sum over ranks is size (size - 1) / 2 + 2 i size.
float value(int rank, int64_t i) { return float(rank + 2 * i); }
float reduced(int size, int64_t i) { return float(size * (size - 1) / 2 + 2 * i * size); }

Tensor filled(DType dt, int64_t n, int rank) {
  Tensor t = host_tensor(dt, {n});
  for (int64_t i = 0; i < n; ++i) {
    const float v = value(rank, i);
    if (dt == DType::F32) t.ptr<float>()[i] = v;
    if (dt == DType::F16) t.ptr<uint16_t>()[i] = f32_to_f16(v);
    if (dt == DType::BF16) t.ptr<uint16_t>()[i] = f32_to_bf16(v);
  }
  return t;
}

float at(const Tensor& t, int64_t i) {
  if (t.dtype == DType::F32) return t.ptr<float>()[i];
  const uint16_t h = t.ptr<uint16_t>()[i];
  return t.dtype == DType::F16 ? f16_to_f32(h) : bf16_to_f32(h);
}

// Reduces, gathers and broadcasts through `comm` on tensors of `backend`.
void check_collectives(Comm& comm, Backend& backend) {
  const World& w = comm.world();
  for (DType dt : {DType::F32, DType::F16, DType::BF16}) {
    const int64_t n = 37;  // not a multiple of anything a kernel might assume
    const Tensor host = filled(dt, n, w.rank);
    Tensor t = backend.alloc(dt, {n});
    backend.upload_into(host.data, t);
    comm.all_reduce_sum(t);
    Tensor back = host_tensor(dt, {n});
    backend.download(t, back.data);
    for (int64_t i = 0; i < n; ++i)
      ASSERT_EQ(at(back, i), reduced(w.size, i)) << dtype_name(dt) << " element " << i;
  }
  // all_gather: every rank contributes 5 I32 values rank * 100 + i.
  Tensor in = host_tensor(DType::I32, {5});
  for (int i = 0; i < 5; ++i) in.ptr<int32_t>()[i] = w.rank * 100 + i;
  Tensor din = backend.alloc(DType::I32, {5}), dout = backend.alloc(DType::I32, {w.size * 5LL});
  backend.upload_into(in.data, din);
  comm.all_gather(din, dout);
  std::vector<int32_t> got(size_t(w.size) * 5);
  backend.download(dout, got.data());
  for (int r = 0; r < w.size; ++r)
    for (int i = 0; i < 5; ++i) ASSERT_EQ(got[size_t(r * 5 + i)], r * 100 + i);
  // broadcast (host memory) from the last rank.
  int64_t word = w.rank == w.size - 1 ? 424242 : -1;
  comm.broadcast(&word, sizeof word, w.size - 1);
  EXPECT_EQ(word, 424242);
}

TEST(Collectives, MpiOnHostBuffers) {
  auto comm = make_mpi_comm();
  auto cpu = make_cpu_backend(1);
  check_collectives(*comm, *cpu);
}

// The CPU backend's download / upload_into are copies, so tensors labelled as device memory
// take the staged path (download, MPI, upload back) with no GPU present.
TEST(Collectives, HostStagedOnBackendTensors) {
  auto cpu = make_cpu_backend(1);
  auto comm = make_staged_comm(make_mpi_comm(), *cpu);
  const World& w = comm->world();
  Tensor t = filled(DType::F16, 200, w.rank);  // sums up to 1598 at np 4: exact in F16
  t.device = Device::CUDA;  // a label only: the memory is host memory
  comm->all_reduce_sum(t);
  for (int64_t i = 0; i < 200; ++i) ASSERT_EQ(at(t, i), reduced(w.size, i)) << "element " << i;
  Tensor in = filled(DType::F32, 4, w.rank), out = host_tensor(DType::F32, {w.size * 4LL});
  in.device = out.device = Device::CUDA;
  comm->all_gather(in, out);
  for (int r = 0; r < w.size; ++r)
    for (int64_t i = 0; i < 4; ++i) ASSERT_EQ(at(out, r * 4 + i), value(r, i));
}

TEST(Collectives, CpuRanksRefuseNccl) {
  auto cpu = make_cpu_backend(1);
  std::string chosen;
  EXPECT_THROW(make_backend_comm(make_mpi_comm(), *cpu, CommKind::Nccl, 0, &chosen), UserError);
  auto comm = make_backend_comm(make_mpi_comm(), *cpu, CommKind::Auto, 0, &chosen);
  EXPECT_EQ(chosen, comm->world().size == 1 ? "single rank" : "mpi");
}

#ifdef TESSERA_HAVE_CUDA
// On a GPU machine: NCCL when every rank has a GPU of its own, host staging when they share.
TEST(Collectives, GpuRanksNcclOrStaged) {
  const int gpus = probe_cuda().device_count;
  if (gpus == 0) GTEST_SKIP() << "no CUDA device";
  auto job = make_mpi_comm();
  const World w = job->world();
  auto gpu = make_cuda_backend(w.local_rank % gpus, DType::F16);
  std::string chosen;
  auto comm = make_backend_comm(std::move(job), *gpu, CommKind::Auto, gpus, &chosen);
  if (w.size > 1)
    EXPECT_EQ(chosen, w.local_size <= gpus ? "nccl" : "mpi (host-staged)");
  check_collectives(*comm, *gpu);
}

// --comm nccl: also at tp 1 (mpirun -np 1), where auto would need no communicator at all.
TEST(Collectives, NcclWhenAsked) {
  const int gpus = probe_cuda().device_count;
  if (gpus == 0) GTEST_SKIP() << "no CUDA device";
  auto job = make_mpi_comm();
  if (job->world().local_size > gpus) GTEST_SKIP() << "ranks share a GPU: NCCL refuses that";
  auto gpu = make_cuda_backend(job->world().local_rank, DType::BF16);
  std::string chosen;
  auto comm = make_backend_comm(std::move(job), *gpu, CommKind::Nccl, gpus, &chosen);
  EXPECT_EQ(chosen, "nccl");
  check_collectives(*comm, *gpu);
}
#endif

}  // namespace
}  // namespace tessera::test

// The NCCL communicator on one GPU, without MPI (the single-rank comm carries the unique id):
// tp 1 through NCCL reduces and gathers device tensors in place, in every dtype the model
// all-reduces. The multi-rank cases are tests/mpi/comm_collectives_test.cpp.
#include <gtest/gtest.h>

#ifdef TESSERA_HAVE_CUDA
#include <vector>

#include "parallel/device_comm.h"
#include "runtime/backend.h"
#include "runtime/cuda_probe.h"

namespace tessera::test {
namespace {

TEST(CudaNccl, SingleRankCollectivesOnDeviceTensors) {
  const CudaInfo info = probe_cuda();
  if (info.device_count == 0) GTEST_SKIP() << "no GPU visible: " << info.error;
  auto gpu = make_cuda_backend(0, DType::BF16);
  std::string chosen;
  auto comm = make_backend_comm(make_single_comm(), *gpu, CommKind::Nccl, info.device_count,
                                &chosen);
  ASSERT_EQ(chosen, "nccl");
  for (DType dt : {DType::F32, DType::F16, DType::BF16}) {
    const int64_t n = 37;
    Tensor host = host_tensor(dt, {n});
    for (int64_t i = 0; i < n; ++i) {
      const float v = float(3 * i - 50);  // exact in every dtype
      if (dt == DType::F32) host.ptr<float>()[i] = v;
      if (dt == DType::F16) host.ptr<uint16_t>()[i] = f32_to_f16(v);
      if (dt == DType::BF16) host.ptr<uint16_t>()[i] = f32_to_bf16(v);
    }
    Tensor t = gpu->alloc(dt, {n});
    gpu->upload_into(host.data, t);
    comm->all_reduce_sum(t);  // one rank: the sum is the tensor itself
    Tensor back = host_tensor(dt, {n});
    gpu->download(t, back.data);
    for (int64_t i = 0; i < n; ++i) {
      const uint16_t h = back.ptr<uint16_t>()[i];
      const float got = dt == DType::F32 ? back.ptr<float>()[i]
                        : dt == DType::F16 ? f16_to_f32(h) : bf16_to_f32(h);
      ASSERT_EQ(got, float(3 * i - 50)) << dtype_name(dt) << " element " << i;
    }
  }
  Tensor in = gpu->alloc(DType::I32, {5}), out = gpu->alloc(DType::I32, {5});
  std::vector<int32_t> ids = {4, 8, 15, 16, 23}, got(5, -1);
  gpu->upload_into(ids.data(), in);
  comm->all_gather(in, out);
  gpu->download(out, got.data());
  EXPECT_EQ(got, ids);
}

}  // namespace
}  // namespace tessera::test
#else
TEST(CudaNccl, SingleRankCollectivesOnDeviceTensors) {
  GTEST_SKIP() << "built without CUDA (TESSERA_CUDA=OFF)";
}
#endif

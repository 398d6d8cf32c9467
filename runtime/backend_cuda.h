// CUDA backend helpers that tests and the launcher call next to make_cuda_backend (declared
// in runtime/backend.h). Plain C++: no CUDA headers. Defined only in builds with
// TESSERA_HAVE_CUDA (runtime/cuda_memory.cu).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "kernels/sampling.h"
#include "runtime/tensor.h"

namespace tessera {

struct CudaDeviceInfo {
  int device = 0;
  std::string name;
  int major = 0, minor = 0;  // compute capability
  int sm_count = 0;          // streaming multiprocessors
  size_t free_bytes = 0, total_bytes = 0;
  int driver_version = 0;    // e.g. 13000
};

// Selects `device` on this thread and describes it. UserError "no CUDA device: <why>" when
// there is no such device or no driver.
CudaDeviceInfo cuda_select_device(int device);

// Device memory that frees itself with its last owner. Out of memory is a UserError naming
// the bytes requested and the bytes free on the device.
std::shared_ptr<void> cuda_device_alloc(size_t bytes, const std::string& what);
// Page-locked host memory (for asynchronous copies).
std::shared_ptr<void> cuda_pinned_alloc(size_t bytes);

// Copies a host tensor to the current GPU byte for byte (no dtype conversion).
Tensor cuda_copy_to_device(const Tensor& host);

// A copy of a host tensor in page-locked host memory mapped into the GPUs' address space,
// converted to `dtype` on the host (convert_cpu): kernels read it through the returned
// tensor's pointer, over PCIe, and it takes no device memory. The tensor is marked CUDA (a
// kernel argument). A failure to pin is a UserError naming `what` and the bytes.
Tensor cuda_host_resident_copy(const Tensor& host, DType dtype, const std::string& what);

// Whether `p` points into page-locked host memory rather than device memory (tests check
// where --embeddings host put a table).
bool cuda_pointer_is_host_memory(const void* p);

// Sets every byte of a device tensor (tests poison outputs with 0xff: NaN in every float type).
void cuda_fill_bytes(const Tensor& t, uint8_t byte);

// Samples one id from a device F32 logits row [vocab] (kernels/sampling.cu).
int32_t cuda_sample(const Tensor& logits, const SamplingParams& p, double u);

// Bytes/s one kernel reads from device memory of the current GPU (a 1 GiB buffer, or a
// quarter of the free memory if less; best of a few passes): the decode roofline's
// numerator on a GPU (runtime/cuda_bandwidth.cu).
double cuda_measure_read_bandwidth();

}  // namespace tessera

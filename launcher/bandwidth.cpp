#include "launcher/bandwidth.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#include "runtime/tensor.h"

namespace tessera {

double measure_read_bandwidth(int threads) {
  const size_t n = (512u << 20) / sizeof(uint64_t);
  // Memory like the weights' (runtime/tensor.h: huge pages where the host grants them), so
  // that the roofline is the bandwidth the kernels could get.
  std::shared_ptr<void> buf;
  try {
    buf = host_alloc(n * sizeof(uint64_t));
  } catch (const std::bad_alloc&) {
    return 0;
  }
  uint64_t* a = static_cast<uint64_t*>(buf.get());
  const int nt = threads > 0 ? threads : omp_get_max_threads();
#pragma omp parallel for num_threads(nt) schedule(static)
  for (size_t i = 0; i < n; ++i) a[i] = i;
  double best = 0;
  volatile uint64_t sink = 0;
  for (int pass = 0; pass < 4; ++pass) {
    auto t0 = std::chrono::steady_clock::now();
    uint64_t total = 0;
#pragma omp parallel for num_threads(nt) schedule(static) reduction(^ : total)
    for (size_t i = 0; i < n; i += 8) {
      total ^= a[i] + a[i + 1] + a[i + 2] + a[i + 3] + a[i + 4] + a[i + 5] + a[i + 6] + a[i + 7];
    }
    sink = sink + total;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, double(n * sizeof(uint64_t)) / s);
  }
  return best;
}

}  // namespace tessera

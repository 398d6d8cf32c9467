// Host memory read bandwidth, measured: the decode roofline's numerator on the CPU.
#pragma once

namespace tessera {

// Bytes/s reading a 512 MiB array with `threads` threads (0: all), best of a few passes.
double measure_read_bandwidth(int threads);

}  // namespace tessera

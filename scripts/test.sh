#!/usr/bin/env bash
# Builds tessera and runs every test (CTest: unit, golden-data, CLI and MPI tests).
#   scripts/test.sh              default build (CUDA targets too when nvcc is present)
#   scripts/test.sh --sanitize   CPU-only build under AddressSanitizer + UBSan
# Test data is read from $TESSERA_TESTDATA, default ../shared/testdata; $TESSERA_CUDA_ARCHS
# (e.g. "75;80") narrows the CUDA architectures the default build compiles for.
set -euo pipefail
cd "$(dirname "$0")/.."

build=build
args=(-G Ninja -DCMAKE_BUILD_TYPE=Release)
if [ "${1:-}" = "--sanitize" ]; then
  build=build-asan
  # -O1 -g1 (line tables: enough for the sanitizers' stack traces) compiles in about half
  # the time of RelWithDebInfo's -O2 -g; this build was half of CI's wall time.
  args=(-G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG"
        -DTESSERA_CUDA=OFF -DTESSERA_SANITIZE=address,undefined
        -DTESSERA_BENCH=OFF)  # no test runs the benchmarks; the default build compiles them
  # OpenMP's runtime keeps thread pools alive at exit; that is not a leak of ours.
  export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
  export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
fi
[ -n "${TESSERA_TESTDATA:-}" ] && args+=(-DTESSERA_TESTDATA="$TESSERA_TESTDATA")
[ -n "${TESSERA_CUDA_ARCHS:-}" ] && args+=(-DTESSERA_CUDA_ARCHS="$TESSERA_CUDA_ARCHS")

cmake -S . -B "$build" "${args[@]}"
cmake --build "$build" -j "$(nproc)"
cd "$build"
ctest --output-on-failure -j "$(nproc)" --timeout 900

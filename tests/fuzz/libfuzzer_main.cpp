// The libFuzzer entry point (scripts/fuzz builds it with clang -fsanitize=fuzzer): the target
// is TESSERA_FUZZ_TARGET's, one of tests/fuzz/fuzz_targets.h's names.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "tests/fuzz/fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const tessera::fuzz::Target* target = [] {
    const char* name = std::getenv("TESSERA_FUZZ_TARGET");
    const tessera::fuzz::Target* t = name ? tessera::fuzz::find_target(name) : nullptr;
    if (!t) {
      std::fprintf(stderr, "set TESSERA_FUZZ_TARGET to one of:");
      for (const auto& each : tessera::fuzz::targets()) std::fprintf(stderr, " %s", each.name);
      std::fprintf(stderr, "\n");
      std::exit(2);
    }
    return t;
  }();
  target->run(data, size);
  return 0;
}

// Fuzz targets: each hands one input that a user controls to the code that parses it. The
// documented rejections (ApiError for request bodies, UserError for files and templates, an
// HTTP error response for the bytes on a connection) are the expected outcome of bad input;
// anything else (another exception, a crash, a sanitizer report, a hang) is a bug.
// scripts/fuzz builds them into one libFuzzer binary (clang) and tests/fuzz_replay_test.cpp
// runs every input saved under tests/fuzz/corpus/<target>/ through them in every build (under
// ASan/UBSan in CI's sanitizer pass).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace tessera::fuzz {

struct Target {
  const char* name;  // also the corpus folder's name
  const char* what;  // the input, in words
  void (*run)(const uint8_t* data, size_t size);
};

// Every target. They read the Qwen2.5 tokenizer and chat template from the test data
// (tests/test_util.h: TESSERA_TESTDATA), once per process.
const std::vector<Target>& targets();
const Target* find_target(const std::string& name);

// A broken invariant: reports `what` and aborts (libFuzzer and gtest both see a crash).
void check(bool ok, const char* what);

Target http_connection_target();  // tests/fuzz/fuzz_http.cpp

}  // namespace tessera::fuzz

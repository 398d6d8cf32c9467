// Tokenizer encode throughput, one thread.
//
//   tokenizer_bench                      gpt2 and qwen2.5 from the test data, on a long English
//                                        text (tinystories-text.txt repeated) and a long CJK text
//                                        (the CJK cases of encode.jsonl repeated)
//   tokenizer_bench DIR TEXT_FILE        one tokenizer directory on one text
//
// The test data is $TESSERA_TESTDATA, else ../shared/testdata (run from the repo root).
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "runtime/error.h"
#include "runtime/tokenizer.h"

namespace {

std::string read(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw tessera::UserError("cannot read " + path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string repeat_to(const std::string& unit, size_t bytes) {
  std::string s;
  while (s.size() < bytes) s += unit;
  return s;
}

// Encodes `text` in 4 KB chunks (as a server would encode prompts) for at least 1 s and
// returns MB/s; the first pass warms the word cache, as a running server's would be.
void bench(const std::string& label, const tessera::Tokenizer& tok, const std::string& text) {
  const size_t chunk = 4096;
  size_t tokens = 0;
  auto run = [&] {
    for (size_t i = 0; i < text.size();) {
      size_t end = std::min(text.size(), i + chunk);
      while (end < text.size() && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) ++end;
      tokens += tok.encode(text.substr(i, end - i), false).size();
      i = end;
    }
  };
  run();
  tokens = 0;
  auto t0 = std::chrono::steady_clock::now();
  int passes = 0;
  double secs = 0;
  do {
    run();
    ++passes;
    secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  } while (secs < 1.0);
  double mb = static_cast<double>(text.size()) * passes / 1e6;
  std::printf("%-28s %8.2f MB/s  %10.0f tokens/s  (%.1f MB text, %.2f bytes/token)\n",
              label.c_str(), mb / secs, tokens / secs, text.size() / 1e6,
              static_cast<double>(text.size()) * passes / tokens);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc == 3) {
      tessera::Tokenizer tok = tessera::Tokenizer::from_dir(argv[1]);
      bench(argv[2], tok, read(argv[2]));
      return 0;
    }
    const char* env = std::getenv("TESSERA_TESTDATA");
    std::string data = env && *env ? env : "../shared/testdata";
    std::string english = repeat_to(read(data + "/perplexity/tinystories-text.txt"), 4 << 20);
    std::string cjk_unit;
    std::ifstream f(data + "/tokenizers/qwen2.5/encode.jsonl");
    for (std::string line; std::getline(f, line);) {
      auto c = nlohmann::json::parse(line);
      std::string t = c["text"];
      // Cases whose first character is a CJK ideograph, kana or hangul (3-byte UTF-8 E3..ED).
      if (!t.empty() && static_cast<unsigned char>(t[0]) >= 0xE3 &&
          static_cast<unsigned char>(t[0]) <= 0xED && c["add_special_tokens"])
        cjk_unit += t + "\n";
    }
    std::string cjk = repeat_to(cjk_unit, 2 << 20);
    for (const char* name : {"gpt2", "qwen2.5"}) {
      tessera::Tokenizer tok = tessera::Tokenizer::from_dir(data + "/tokenizers/" + name);
      bench(std::string(name) + " English", tok, english);
      bench(std::string(name) + " CJK", tok, cjk);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tokenizer_bench: %s\n", e.what());
    return 2;
  }
}

#include "tests/fuzz/fuzz_targets.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "launcher/openai_api.h"
#include "runtime/chat_template.h"
#include "runtime/error.h"
#include "runtime/memory_plan.h"
#include "runtime/model_config.h"
#include "runtime/safetensors.h"
#include "runtime/tokenizer.h"
#include "tests/test_util.h"

namespace tessera::fuzz {
namespace {

std::string text_of(const uint8_t* data, size_t size) {
  return std::string(reinterpret_cast<const char*>(data), size);
}

const std::string& qwen_dir() {
  static const std::string dir = tessera::test::testdata_dir() + "/tokenizers/qwen2.5";
  return dir;
}

const Tokenizer& qwen_tokenizer() {
  static const Tokenizer t = Tokenizer::from_dir(qwen_dir());
  return t;
}

// The server's view of Qwen2.5 with a 4096-token context.
const ServedModel& served() {
  static const ChatTemplate tmpl = ChatTemplate::from_tokenizer_config(qwen_dir());
  static const ServedModel m = [] {
    ServedModel s;
    s.name = "qwen";
    s.tokenizer = &qwen_tokenizer();
    s.chat_template = &tmpl;
    s.max_model_len = 4096;
    s.vocab_size = qwen_tokenizer().vocab_size();
    return s;
  }();
  return m;
}

void check_request(const ApiRequest& r) {
  const ServedModel& m = served();
  check(!r.engine.prompt.empty(), "an accepted request has a prompt");
  for (int32_t id : r.engine.prompt) check(id >= 0 && id < m.vocab_size, "prompt id in vocab");
  check(r.engine.max_tokens >= 1 &&
            int64_t(r.engine.prompt.size()) + r.engine.max_tokens <= m.max_model_len,
        "prompt + max_tokens within the context");
}

// A rejected body is a 400, or a 404 naming "model" for another model's name.
void check_rejection(const ApiError& e) {
  check(e.status == 400 || (e.status == 404 && e.param == "model"), "a bad request is a 400");
}

void chat_request(const uint8_t* data, size_t size) {
  try {
    check_request(parse_chat_request(text_of(data, size), served()));
  } catch (const ApiError& e) {
    check_rejection(e);
  }
}

void completion_request(const uint8_t* data, size_t size) {
  try {
    check_request(parse_completion_request(text_of(data, size), served()));
  } catch (const ApiError& e) {
    check_rejection(e);
  }
}

void tokenizer_encode(const uint8_t* data, size_t size) {
  const Tokenizer& t = qwen_tokenizer();
  const std::vector<int32_t> ids = t.encode(text_of(data, size), size % 2 == 0);
  for (int32_t id : ids) check(id >= 0 && id < t.vocab_size(), "encoded id in vocab");
  (void)t.decode(ids, false);  // ids in the vocabulary always decode
}

void chat_template(const uint8_t* data, size_t size) {
  const auto messages = nlohmann::ordered_json::parse(
      R"([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
          {"role": "assistant", "content": "Hello", "tool_calls": [{"function":
          {"name": "f", "arguments": {"x": 1}}}]}, {"role": "tool", "content": "2"}])");
  const auto tools = nlohmann::ordered_json::parse(
      R"([{"type": "function", "function": {"name": "f", "parameters": {}}}])");
  try {
    (void)ChatTemplate::from_string(text_of(data, size)).render(messages, tools, true);
  } catch (const UserError&) {
  }
}

void model_config(const uint8_t* data, size_t size) {
  try {
    PlanRequest r;
    r.model = parse_model_config(text_of(data, size), "config.json");
    r.device = *known_gpu("t4");
    (void)make_plan(r);
  } catch (const UserError&) {
  }
}

void tokenizer_json(const uint8_t* data, size_t size) {
  try {
    const Tokenizer t = Tokenizer::from_json(text_of(data, size), "");
    for (int32_t id : t.encode("Hello, world! 123 héllo 世界\n\n  x", true))
      check(id >= 0 && id < t.vocab_size(), "encoded id in vocab");
  } catch (const UserError&) {
  }
}

// The bytes as a .safetensors file (one per process, rewritten each time), opened and read.
void safetensors(const uint8_t* data, size_t size) {
  static const std::string path = (std::filesystem::temp_directory_path() /
                                   ("tessera-fuzz-" + std::to_string(getpid()) +
                                    ".safetensors")).string();
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(data), std::streamsize(size));
  try {
    auto f = SafetensorsFile::open(path);
    for (const auto& entry : f->tensors()) {
      const Tensor t = f->view(entry.first);
      if (t.ndim >= 1 && t.dim(0) > 0) (void)f->read_rows(entry.first, 0, 1);
    }
  } catch (const UserError&) {
  }
}

}  // namespace

void check(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "fuzz invariant broken: %s\n", what);
  std::abort();
}

const std::vector<Target>& targets() {
  static const std::vector<Target> all = {
      {"chat_request", "a /v1/chat/completions body", chat_request},
      {"completion_request", "a /v1/completions body", completion_request},
      {"tokenizer_encode", "text for Qwen2.5's tokenizer", tokenizer_encode},
      {"chat_template", "a chat template's source", chat_template},
      {"model_config", "a config.json, then its plan on a T4", model_config},
      {"tokenizer_json", "a tokenizer.json", tokenizer_json},
      {"safetensors", "a .safetensors file", safetensors},
      http_connection_target(),
  };
  return all;
}

const Target* find_target(const std::string& name) {
  for (const Target& t : targets())
    if (name == t.name) return &t;
  return nullptr;
}

}  // namespace tessera::fuzz

// Chat template + tokenizer together: the Qwen2.5 golden conversations render and encode to
// the golden ids (as transformers' apply_chat_template(tokenize=True) does: no extra
// special tokens on top of the template's).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "runtime/chat_template.h"
#include "runtime/tokenizer.h"
#include "tests/test_util.h"

namespace tessera::test {

TEST(ChatEncode, Qwen25GoldenConversationsEncodeToGoldenIds) {
  TESSERA_REQUIRE_TESTDATA();
  const std::string dir = testdata_dir() + "/tokenizers/qwen2.5";
  const Tokenizer tok = Tokenizer::from_dir(dir);
  const ChatTemplate tmpl = ChatTemplate::from_tokenizer_config(dir);
  std::ifstream f(dir + "/chat_template.jsonl");
  std::string line;
  int cases = 0;
  while (std::getline(f, line)) {
    if (line.empty()) continue;
    const auto c = nlohmann::ordered_json::parse(line);
    const nlohmann::ordered_json tools = c.contains("tools") ? c["tools"] : nullptr;
    const std::string text = tmpl.render(c["messages"], tools, c["add_generation_prompt"]);
    ASSERT_EQ(text, c["rendered"].get<std::string>()) << c["name"];
    EXPECT_EQ(tok.encode(text, false), c["ids"].get<std::vector<int32_t>>()) << c["name"];
    ++cases;
  }
  EXPECT_GE(cases, 5);
}

}  // namespace tessera::test

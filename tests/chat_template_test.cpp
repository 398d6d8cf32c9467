// Chat templates: the qwen2.5 goldens from Hugging Face, other real templates against
// @huggingface/jinja 0.5.11 renderings (tests/fixtures/chat_templates/cases.jsonl, made by
// scripts/make-chat-template-fixtures.mjs), and the loader's errors.
#include "runtime/chat_template.h"

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>

#include "runtime/error.h"
#include "tests/test_util.h"

namespace tessera {
namespace {

using nlohmann::ordered_json;

std::vector<ordered_json> read_jsonl(const std::string& path) {
  std::vector<ordered_json> out;
  std::istringstream in(test::read_file(path));
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(ordered_json::parse(line));
  return out;
}

std::string fixtures_dir() { return std::string(TESSERA_SOURCE_DIR) + "/tests/fixtures/chat_templates"; }

TEST(ChatTemplate, Qwen25Goldens) {
  TESSERA_REQUIRE_TESTDATA();
  std::string dir = test::testdata_dir() + "/tokenizers/qwen2.5";
  ChatTemplate t = ChatTemplate::from_tokenizer_config(dir);
  auto cases = read_jsonl(dir + "/chat_template.jsonl");
  ASSERT_GE(cases.size(), 7u);
  for (auto& c : cases) {
    SCOPED_TRACE(c["name"].get<std::string>());
    ordered_json tools = c.contains("tools") ? c["tools"] : ordered_json();
    EXPECT_EQ(t.render(c["messages"], tools, c["add_generation_prompt"].get<bool>()),
              c["rendered"].get<std::string>());
  }
}

// Every case of cases.jsonl: the template rendered by @huggingface/jinja, or the message of
// the error it raised.
TEST(ChatTemplate, RealTemplatesMatchHuggingFaceJinja) {
  auto cases = read_jsonl(fixtures_dir() + "/cases.jsonl");
  ASSERT_GE(cases.size(), 60u);
  std::map<std::string, ChatTemplate> templates;
  for (auto& c : cases) {
    std::string name = c["template"].get<std::string>();
    SCOPED_TRACE(name + " / " + c["name"].get<std::string>());
    if (!templates.count(name))
      templates.emplace(name, ChatTemplate::from_string(test::read_file(fixtures_dir() + "/" + name + ".jinja")));
    ordered_json extra = ordered_json::object();
    if (!c["bos_token"].is_null()) extra["bos_token"] = c["bos_token"];
    if (!c["eos_token"].is_null()) extra["eos_token"] = c["eos_token"];
    ordered_json tools = c.contains("tools") ? c["tools"] : ordered_json();
    const ChatTemplate& t = templates.at(name);
    bool gen = c["add_generation_prompt"].get<bool>();
    if (c.contains("error")) {
      try {
        t.render(c["messages"], tools, gen, extra);
        ADD_FAILURE() << "expected an error: " << c["error"];
      } catch (const UserError& e) {
        EXPECT_EQ(std::string(e.what()), c["error"].get<std::string>());
      }
    } else {
      EXPECT_EQ(t.render(c["messages"], tools, gen, extra), c["rendered"].get<std::string>());
    }
  }
}

void write(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

TEST(ChatTemplate, LoadsConfigForms) {
  std::string dir = test::make_temp_dir("chat_template");
  write(dir + "/tokenizer_config.json", R"({
    "bos_token": {"__type": "AddedToken", "content": "<s>", "lstrip": false},
    "eos_token": "</s>",
    "chat_template": [
      {"name": "default", "template": "{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}{{ eos_token }}"},
      {"name": "tool_use", "template": "{{ tools | length }} tools{% if add_generation_prompt %}>{% endif %}"}
    ]})");
  ordered_json msgs = ordered_json::parse(R"([{"role": "user", "content": "hi"}])");
  ChatTemplate t = ChatTemplate::from_tokenizer_config(dir);
  EXPECT_EQ(t.render(msgs, nullptr, false), "<s>hi</s>");
  EXPECT_EQ(t.bos_token(), "<s>");
  EXPECT_EQ(t.eos_token(), "</s>");
  EXPECT_EQ(t.template_names(), (std::vector<std::string>{"default", "tool_use"}));
  ChatTemplate tools = ChatTemplate::from_tokenizer_config(dir + "/tokenizer_config.json", "tool_use");
  EXPECT_EQ(tools.render(msgs, ordered_json::parse("[{}, {}]"), true), "2 tools>");
  EXPECT_EQ(tools.render(msgs, nullptr, false), "0 tools");  // tools undefined when null
  // extra_context adds variables and overrides the defaults.
  EXPECT_EQ(t.render(msgs, nullptr, false, {{"eos_token", "<END>"}}), "<s>hi<END>");
  try {
    ChatTemplate::from_tokenizer_config(dir, "nope");
    FAIL() << "no error";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("it has: default, tool_use"), std::string::npos) << e.what();
  }
}

TEST(ChatTemplate, SeparateJinjaFile) {
  std::string dir = test::make_temp_dir("chat_template_file");
  write(dir + "/tokenizer_config.json", R"({"eos_token": "<e>"})");
  write(dir + "/chat_template.jinja", "{% for m in messages %}[{{ m.role }}]{% endfor %}{{ eos_token }}\n");
  EXPECT_EQ(ChatTemplate::from_tokenizer_config(dir).render(ordered_json::parse(R"([{"role": "user"}])"), nullptr, true),
            "[user]<e>");
}

TEST(ChatTemplate, Errors) {
  std::string dir = test::make_temp_dir("chat_template_none");
  write(dir + "/tokenizer_config.json", R"({"eos_token": "</s>"})");
  try {
    ChatTemplate::from_tokenizer_config(dir);
    FAIL() << "no error";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("model has no chat_template"), std::string::npos) << e.what();
  }
  EXPECT_THROW(ChatTemplate::from_tokenizer_config(dir + "/missing-dir"), UserError);
  EXPECT_THROW(ChatTemplate::from_string("{% if %}"), UserError);
  ChatTemplate t = ChatTemplate::from_string("{{ raise_exception('no system role') }}");
  try {
    t.render(ordered_json::array(), nullptr, true);
    FAIL() << "no error";
  } catch (const UserError& e) {
    EXPECT_STREQ(e.what(), "no system role");
  }
  EXPECT_THROW(t.render(ordered_json::object(), nullptr, true), UserError);  // messages must be a list
}

}  // namespace
}  // namespace tessera

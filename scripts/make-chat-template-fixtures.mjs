// Renders the chat templates in tests/fixtures/chat_templates/*.jinja with Hugging Face's own
// JavaScript implementation (@huggingface/jinja 0.5.11, which tokenizes with trim_blocks and
// lstrip_blocks on, like transformers' apply_chat_template) and writes the expected results to
// tests/fixtures/chat_templates/cases.jsonl. tessera's tests compare against this file; its
// expected values never come from tessera itself.
//
//   npm install @huggingface/jinja@0.5.11
//   node scripts/make-chat-template-fixtures.mjs [REPO_ROOT]   (default: the current directory)
//
// Where @huggingface/jinja differs from Python's Jinja (it counts string length in UTF-16 code
// units, ignores str.strip(chars), its |capitalize keeps the rest's case, it cannot compare
// strings with <, it prints none as "" and booleans as true/false), the cases avoid the
// difference: tessera follows Python, which is what transformers runs.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Template } from "@huggingface/jinja";

const root = process.argv[2] ?? process.cwd();
const dir = join(root, "tests/fixtures/chat_templates");

const tokens = {
  "llama-2-chat": ["<s>", "</s>"],
  "llama-3-instruct": ["<|begin_of_text|>", "<|eot_id|>"],
  "llama-3.1-instruct": ["<|begin_of_text|>", "<|eot_id|>"],
  "mistral-7b-instruct-v0.1": ["<s>", "</s>"],
  "mistral-7b-instruct-v0.3": ["<s>", "</s>"],
  "zephyr": ["<s>", "</s>"],
  "tinyllama-1.1b-chat-v1.0": ["<s>", "</s>"],
  "chatml": ["<s>", "<|im_end|>"],
  "phi-3-mini-instruct": ["<s>", "<|endoftext|>"],
  "gemma-it": ["<bos>", "<eos>"],
  "qwen2.5-instruct": [null, "<|im_end|>"],
  "features": ["<BOS>", "<EOS>"],
};

const weatherTool = {
  type: "function",
  function: {
    name: "get_weather",
    description: "Current weather for a city",
    parameters: { type: "object", properties: { city: { type: "string", description: "City name, e.g. Paris" } }, required: ["city"] },
  },
};

const conversations = [
  { name: "user_only", messages: [{ role: "user", content: "Hello!" }], add_generation_prompt: true },
  { name: "user_only_no_gen", messages: [{ role: "user", content: "Hello!" }], add_generation_prompt: false },
  {
    name: "multi_turn",
    messages: [
      { role: "user", content: "2+2?" },
      { role: "assistant", content: " 4 " },
      { role: "user", content: "  and 3+3?\n" },
    ],
    add_generation_prompt: true,
  },
  {
    name: "system_multi_turn",
    messages: [
      { role: "system", content: "You are terse." },
      { role: "user", content: "Name a prime." },
      { role: "assistant", content: "7" },
      { role: "user", content: "Another, in Unicode: ünï — 日本語 ☺" },
    ],
    add_generation_prompt: true,
  },
  {
    name: "bad_alternation",
    messages: [
      { role: "user", content: "a" },
      { role: "user", content: "b" },
    ],
    add_generation_prompt: true,
  },
  { name: "tools", messages: [{ role: "user", content: "Weather in Paris?" }], tools: [weatherTool], add_generation_prompt: true },
  {
    name: "tool_call_roundtrip",
    messages: [
      { role: "user", content: "Weather in Paris?" },
      { role: "assistant", content: "", tool_calls: [{ id: "call12345", type: "function", function: { name: "get_weather", arguments: { city: "Paris" } } }] },
      { role: "tool", tool_call_id: "call12345", content: '{"temp_c": 18}' },
    ],
    tools: [weatherTool],
    add_generation_prompt: true,
  },
];

const toolTemplates = new Set(["llama-3.1-instruct", "mistral-7b-instruct-v0.3", "qwen2.5-instruct", "features"]);

const lines = [];
for (const [name, [bos, eos]] of Object.entries(tokens)) {
  const source = readFileSync(join(dir, `${name}.jinja`), "utf8");
  const template = new Template(source);
  for (const conv of conversations) {
    if (conv.tools && !toolTemplates.has(name)) continue;
    const context = { messages: conv.messages, add_generation_prompt: conv.add_generation_prompt };
    if (conv.tools) context.tools = conv.tools;
    if (bos !== null) context.bos_token = bos;
    if (eos !== null) context.eos_token = eos;
    const c = { template: name, name: conv.name, messages: conv.messages };
    if (conv.tools) c.tools = conv.tools;
    c.add_generation_prompt = conv.add_generation_prompt;
    c.bos_token = bos;
    c.eos_token = eos;
    try {
      c.rendered = template.render(context);
    } catch (e) {
      c.error = String(e.message);
    }
    lines.push(JSON.stringify(c));
  }
}
writeFileSync(join(dir, "cases.jsonl"), lines.join("\n") + "\n");
console.log(`wrote ${lines.length} cases to ${join(dir, "cases.jsonl")}`);

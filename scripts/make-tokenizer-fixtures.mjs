// Writes tests/fixtures/tokenizers/<name>/{tokenizer.json,cases.jsonl}: small tokenizers that
// exercise the components the real tokenizers in ../shared/testdata do not, with expected
// outputs computed by Hugging Face's own JavaScript implementation (never by tessera).
//
//   npm install @huggingface/tokenizers@0.2.0
//   node scripts/make-tokenizer-fixtures.mjs [OUT_DIR]   (default tests/fixtures/tokenizers)
//
// Only components whose JS behaviour matches the Rust `tokenizers` crate are used here; the
// rest (Split MergedWithPrevious/MergedWithNext/Contiguous, invert with Isolated, Metaspace
// split, single_word) are tested against hand-derived expectations in C++.
import { Tokenizer } from "@huggingface/tokenizers";
import fs from "node:fs";
import path from "node:path";

const out_dir = process.argv[2] ?? "tests/fixtures/tokenizers";

// A BPE model whose vocabulary is `specials`, then `alphabet`, then every merge result.
function bpe_model(specials, alphabet, merges, extra = {}, pairs = true) {
  const vocab = {};
  const add = (t) => { if (!(t in vocab)) vocab[t] = Object.keys(vocab).length; };
  specials.forEach(add);
  alphabet.forEach(add);
  for (const [a, b] of merges) add(a + b);
  (extra.more_tokens ?? []).forEach(add);
  delete extra.more_tokens;
  return {
    type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: null,
    end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false,
    ...extra, vocab, merges: pairs ? merges : merges.map(([a, b]) => `${a} ${b}`),
  };
}
const added = (id, content, opts = {}) => ({
  id, content, single_word: false, lstrip: false, rstrip: false, normalized: false,
  special: true, ...opts,
});
const chars = (s) => Array.from(s);
const template = (bos, eos) => ({
  type: "TemplateProcessing",
  single: [
    ...(bos ? [{ SpecialToken: { id: bos, type_id: 0 } }] : []),
    { Sequence: { id: "A", type_id: 0 } },
    ...(eos ? [{ SpecialToken: { id: eos, type_id: 0 } }] : []),
  ],
  pair: [{ Sequence: { id: "A", type_id: 0 } }, { Sequence: { id: "B", type_id: 1 } }],
  special_tokens: {},
});
function with_template_ids(tj, post) {
  // special_tokens ids from the vocabulary, as the Rust crate serializes them.
  const ids = { ...tj.model.vocab };
  for (const a of tj.added_tokens) ids[a.content] = a.id;
  for (const item of post.single)
    if (item.SpecialToken) {
      const t = item.SpecialToken.id;
      post.special_tokens[t] = { id: t, ids: [ids[t]], tokens: [t] };
    }
  return post;
}

const fixtures = [];

// 1. ["a","b"] merges, Lowercase + Replace(Regex) normalizers, Split (Regex, Removed),
//    Split (String, Isolated), Digits (individual), unk_token without fusing, TemplateProcessing.
{
  const alphabet = chars("abcdefghijklmnopqrstuvwxyz0123456789.,!?'-");
  const merges = [["t", "h"], ["th", "e"], ["i", "n"], ["in", "g"], ["e", "r"], ["a", "n"],
    ["an", "d"], ["1", "2"], ["o", "n"], ["c", "e"], ["r", "ing"], ["-", "-"]];
  const tj = {
    version: "1.0", truncation: null, padding: null,
    added_tokens: [added(0, "[UNK]"), added(1, "[CLS]"), added(2, "[SEP]")],
    normalizer: { type: "Sequence", normalizers: [
      { type: "Lowercase" }, { type: "Replace", pattern: { Regex: "\\s+" }, content: " " }] },
    pre_tokenizer: { type: "Sequence", pretokenizers: [
      { type: "Split", pattern: { Regex: "\\s+" }, behavior: "Removed", invert: false },
      { type: "Split", pattern: { String: "-" }, behavior: "Isolated", invert: false },
      { type: "Digits", individual_digits: true }] },
    model: bpe_model(["[UNK]", "[CLS]", "[SEP]"], alphabet, merges, { unk_token: "[UNK]" }),
    decoder: { type: "Fuse" },
  };
  tj.post_processor = with_template_ids(tj, template("[CLS]", "[SEP]"));
  fixtures.push(["pairs_digits_lowercase", tj, [
    "The THING and the Ring", "Numbers 12345 and 3.14!", "well-known--thing", "Ωmega café",
    "İstanbul", "  spaced \t\n  out  ", "[CLS] inside [SEP]", "there", "", "!!!", "x[UNK]y"]]);
}

// 2. Metaspace (prepend always, no split) + Metaspace decoder, NFKC, "a b" merges, unk with
//    fuse_unk, added tokens with lstrip / rstrip / normalized, TemplateProcessing <s> $A </s>.
{
  const alphabet = ["▁", ...chars("abcdefghijklmnopqrstuvwxyzTH")];
  const merges = [["▁", "t"], ["h", "e"], ["▁t", "he"], ["l", "o"], ["lo", "w"], ["▁", "low"],
    ["e", "r"], ["▁low", "er"], ["▁", "a"], ["f", "i"], ["fi", "x"]];
  const tj = {
    version: "1.0", truncation: null, padding: null,
    added_tokens: [added(0, "<unk>"), added(1, "<s>"), added(2, "</s>"),
      added(100, "[MASK]", { lstrip: true }), added(101, "<sep>", { rstrip: true }),
      added(102, "HeLLo", { special: false, normalized: true }),
      added(103, "ﬁnd", { special: false, normalized: true })],
    normalizer: { type: "NFKC" },
    pre_tokenizer: { type: "Metaspace", replacement: "▁", prepend_scheme: "always", split: false },
    model: bpe_model(["<unk>", "<s>", "</s>"], alphabet, merges,
      { unk_token: "<unk>", fuse_unk: true }, false),
    decoder: { type: "Metaspace", replacement: "▁", prepend_scheme: "always", split: false },
  };
  tj.post_processor = with_template_ids(tj, template("<s>", "</s>"));
  fixtures.push(["metaspace_unk_added", tj, [
    "the lower", " the  lower", "ÆØÅ the", "ÆØ the ÅÆ", "a  [MASK] b", "x <sep>   y",
    "HeLLo there", "hello HeLLo", "find ﬁnd fix ﬁx", "<s>the</s>", "", "ＴＨＥ ｌｏｗ"]]);
}

// 3. Prepend + Replace(String) normalizers, Split (Regex, Isolated) + Digits (grouped),
//    byte_fallback, ignore_merges, normalized special token, Replace/ByteFallback/Fuse/Strip
//    decoders, Sequence post-processor.
{
  const bytes = Array.from({ length: 256 }, (_, b) =>
    `<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
  const alphabet = ["▁", ...chars("abcdehilorw0123456789")];
  const merges = [["▁", "h"], ["e", "l"], ["el", "l"], ["▁h", "ell"], ["▁hell", "o"], ["o", "r"],
    ["▁", "w"], ["l", "d"], ["1", "2"], ["12", "3"]];
  const tj = {
    version: "1.0", truncation: null, padding: null,
    added_tokens: [added(0, "<unk>"), added(1, "<s>", { normalized: true }), added(2, "</s>"),
      added(300, "<|x|>")],
    normalizer: { type: "Sequence", normalizers: [
      { type: "Prepend", prepend: "▁" }, { type: "Replace", pattern: { String: " " }, content: "▁" }] },
    pre_tokenizer: { type: "Sequence", pretokenizers: [
      { type: "Split", pattern: { Regex: "▁[^▁]*" }, behavior: "Isolated", invert: false },
      { type: "Digits", individual_digits: false }] },
    model: bpe_model(["<unk>", "<s>", "</s>", ...bytes], alphabet, merges, {
      unk_token: "<unk>", fuse_unk: true, byte_fallback: true, ignore_merges: true,
      more_tokens: ["▁world", "▁hi"] }),
    decoder: { type: "Sequence", decoders: [
      { type: "Replace", pattern: { String: "▁" }, content: " " }, { type: "ByteFallback" },
      { type: "Fuse" }, { type: "Strip", content: " ", start: 1, stop: 0 }] },
  };
  tj.post_processor = { type: "Sequence", processors: [
    { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false },
    with_template_ids(tj, template("<s>", null))] };
  fixtures.push(["prepend_bytefallback_ignore_merges", tj, [
    "hello world", "hello12345world 123", "héllo 😀 wörld", "<s> hello </s>", "hi<|x|>there",
    "", "   ", "中文", "hello\nworld"]]);
}

// 4. NFD, Split (Regex, Removed, invert), ByteLevel (add_prefix_space, no regex) with
//    ["a","b"] merges over byte-level symbols, ByteLevel decoder and post-processor.
{
  // GPT-2's byte -> code point table.
  const bs = [];
  for (let b = 33; b <= 126; ++b) bs.push(b);
  for (let b = 161; b <= 172; ++b) bs.push(b);
  for (let b = 174; b <= 255; ++b) bs.push(b);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; ++b) if (!bs.includes(b)) { bs.push(b); cs.push(256 + n++); }
  const alphabet = cs.map((c) => String.fromCharCode(c));
  const merges = [["Ġ", "h"], ["e", "l"], ["Ġh", "el"], ["Ġhel", "l"], ["Ġhell", "o"],
    ["Ġ", "w"], ["o", "r"], ["Ġw", "or"], ["Ġ", "1"], ["Ġ1", "2"]];
  const tj = {
    version: "1.0", truncation: null, padding: null,
    added_tokens: [added(300, "<|end|>")],
    normalizer: { type: "NFD" },
    pre_tokenizer: { type: "Sequence", pretokenizers: [
      { type: "Split", pattern: { Regex: "\\p{L}+|\\p{N}+" }, behavior: "Removed", invert: true },
      { type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: false }] },
    model: bpe_model([], alphabet, merges),
    post_processor: { type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: false },
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: false },
  };
  fixtures.push(["nfd_split_invert_bytelevel", tj, [
    "Hello, world! 12 abc", "naïve café", "日本語 テキスト", "a<|end|>b", "", "...", "hello<|end|>"]]);
}

for (const [name, tj, texts] of fixtures) {
  const dir = path.join(out_dir, name);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, "tokenizer.json"), JSON.stringify(tj, null, 1) + "\n");
  const config = { clean_up_tokenization_spaces: false };
  fs.writeFileSync(path.join(dir, "tokenizer_config.json"), JSON.stringify(config) + "\n");
  const tok = new Tokenizer(tj, config);
  const lines = [];
  for (const text of texts)
    for (const add_special_tokens of [true, false]) {
      const ids = tok.encode(text, { add_special_tokens }).ids;
      const dec = (skip) => (ids.length ? tok.decode(ids, { skip_special_tokens: skip }) : "");
      lines.push(JSON.stringify({ text, add_special_tokens, ids, decoded: dec(false),
        decoded_skip_special: dec(true) }));
    }
  fs.writeFileSync(path.join(dir, "cases.jsonl"), lines.join("\n") + "\n");
  console.log(`${name}: ${lines.length} cases`);
}

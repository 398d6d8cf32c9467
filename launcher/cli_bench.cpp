// tessera bench: prefill and decode throughput, like llama-bench's pp/tg tests. Rows:
// prefill of P prompt tokens (tokens/s and TFLOP/s) for each P of -p and --prefill; decode
// at batch B (B sequences, each adding one token per step from a context of --depth tokens;
// launcher/bench_decode) for each B of --batches, with batch 1 also as a fraction of the
// memory-bandwidth roofline. On CUDA every decode row is measured with and without graphs.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>

#include "launcher/bandwidth.h"
#include "launcher/bench_decode.h"
#include "launcher/cli_parse.h"
#include "launcher/commands.h"
#include "launcher/config_file.h"
#include "launcher/model_loading.h"
#include "runtime/error.h"
#include "runtime/sequence.h"
#ifdef TESSERA_HAVE_CUDA
#include "runtime/backend_cuda.h"
#endif

namespace tessera {
namespace {

using json = nlohmann::json;
using clock_type = std::chrono::steady_clock;
constexpr int64_t kBlock = kBenchBlockSize;

struct BenchArgs {
  ModelArgs model;
  int64_t prompt_tokens = 128, gen_tokens = 64, repeats = 3, depth = 0;
  std::string prefill = "512,2048", batches = "1,8,32,128";
  bool json = false;
};

const char* kFlopsCounted =
    "2 x (every layer's linear weights) x tokens + 2 x hidden x vocab (the last token's "
    "lm_head row) + 4 x head_dim x heads x layers x causal (query, key) pairs; embedding, "
    "norms, RoPE and SiLU not counted";

// FLOPs of a prefill of t tokens as one sequence with logits for its last token (see
// kFlopsCounted). Sliding-window models see at most `window` keys per query.
double prefill_flops(const ModelConfig& c, int64_t t) {
  const double H = double(c.hidden_size), q = double(c.q_size()), kv = double(c.kv_size());
  const double linear = H * q + 2 * H * kv + q * H + 3 * H * double(c.intermediate_size);
  double pairs = 0;
  for (int64_t i = 0; i < t; ++i)
    pairs += double(c.sliding_window > 0 ? std::min(i + 1, c.sliding_window) : i + 1);
  return 2 * linear * double(c.num_layers) * double(t) + 2 * H * double(c.vocab_size) +
         4.0 * double(c.head_dim * c.num_heads * c.num_layers) * pairs;
}

std::set<int64_t> parse_sizes(const std::string& list, const std::string& flag) {
  std::set<int64_t> out;
  std::stringstream ss(list);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    const std::optional<long long> v = parse_integer(item);
    require(v && *v > 0,
            flag + ": expected positive integers separated by commas, got \"" + item + "\"");
    out.insert(*v);
  }
  return out;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

// Tokens/s of one prefill of `tokens` random tokens as one batch.
double prefill_once(Model& m, KvCache& kv, int64_t tokens, std::mt19937& rng) {
  std::uniform_int_distribution<int32_t> tok(0, int32_t(m.config().vocab_size - 1));
  BlockAllocator alloc(kv.shape().num_blocks);
  Sequence s;
  for (int64_t i = 0; i < tokens; ++i) s.tokens.push_back(tok(rng));
  s.reserve(alloc, tokens, kBlock);
  BatchBuilder bb(kBlock);
  bb.add(s, tokens, false);
  const Batch b = bb.build();
  const auto t0 = clock_type::now();
  m.forward(b, kv);  // returns the logits on the host: the step has finished
  return double(tokens) / seconds_since(t0);
}

KvCache cache_for(Model& m, int64_t blocks) {
  return KvCache(m.backend(), m.kv_shape(blocks, kBlock));
}

// Runs a row's work. With one rank, a row that fails (e.g. out of memory at a large batch)
// reports the error in its row and the other rows still run; under tensor parallel every
// rank must fail together, so the error ends the command.
template <class Fn> void guarded(json& row, bool single_rank, Fn&& fn) {
  if (!single_rank) return fn();
  try {
    fn();
  } catch (const std::exception& e) {
    row["error"] = e.what();
    std::fprintf(stderr, "bench: %s\n", e.what());
  }
}

json prefill_row(Model& m, int64_t tokens, const BenchArgs& a, std::mt19937& rng, bool single) {
  const ModelConfig& c = m.config();
  json row = {{"tokens", tokens}};
  if (tokens > c.max_position_embeddings) {
    row["skipped"] = "beyond max_position_embeddings (" +
                     std::to_string(c.max_position_embeddings) + ")";
    return row;
  }
  guarded(row, single, [&] {
    KvCache kv = cache_for(m, (tokens + kBlock - 1) / kBlock);
    prefill_once(m, kv, std::min<int64_t>(tokens, 16), rng);  // warm-up
    std::vector<double> tps;
    for (int64_t r = 0; r < a.repeats; ++r) tps.push_back(prefill_once(m, kv, tokens, rng));
    const double flops = prefill_flops(c, tokens), t = median(tps);
    row.update({{"tokens_per_s", t},
                {"flops", flops},
                {"tflop_s", flops * t / double(tokens) / 1e12}});
  });
  return row;
}

json decode_row(Model& m, int64_t batch, const BenchArgs& a, std::mt19937& rng, bool single) {
  json row = {{"batch", batch}, {"steps", a.gen_tokens}, {"depth", a.depth}};
  guarded(row, single, [&] {
    row.update(measure_decode(m, {batch, a.gen_tokens, a.depth, a.repeats}, rng));
  });
  return row;
}

// Bytes one decode step must read: every layer weight and lm_head once, one embedding row.
uint64_t decode_step_bytes(const ModelWeights& w) {
  uint64_t step_bytes = w.bytes;
  const uint64_t embed_bytes = uint64_t(w.embed.nbytes());
  if (w.lm_head.weight.data != w.embed.data)  // untied: the embedding table is not read
    step_bytes -= embed_bytes - embed_bytes / uint64_t(w.embed.dim(0));
  return step_bytes;
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

void print_table(const json& j, const ModelConfig& c, const ModelWeights& w) {
  std::printf("model: %s, hidden %lld, layers %lld, vocab %lld, weights %.1f MiB, %s\n",
              c.model_type.c_str(), (long long)c.hidden_size, (long long)c.num_layers,
              (long long)c.vocab_size, double(w.bytes) / 1048576.0,
              j["device"].get<std::string>().c_str());
  std::printf("%-26s %12s %10s   (median of %lld)\n", "prefill", "tokens/s", "TFLOP/s",
              (long long)j["repeats"].get<int64_t>());
  for (const json& r : j["prefill"]) {
    const std::string name = "pp" + std::to_string(r["tokens"].get<int64_t>());
    if (r.contains("tokens_per_s"))
      std::printf("  %-24s %12.1f %10.3f\n", name.c_str(), r["tokens_per_s"].get<double>(),
                  r["tflop_s"].get<double>());
    else
      std::printf("  %-24s %s\n", name.c_str(),
                  (r.contains("skipped") ? "skipped: " + r["skipped"].get<std::string>()
                                         : "error: " + r["error"].get<std::string>()).c_str());
  }
  const bool graphs = j["cuda_graphs"].get<bool>();
  const int64_t depth = j["depth"].get<int64_t>();
  std::string decode = "decode, " + std::to_string(j["decode_tokens"].get<int64_t>()) + " steps";
  if (depth > 0) decode = "decode tg" + std::to_string(j["decode_tokens"].get<int64_t>()) +
                          " @ d" + std::to_string(depth);  // llama-bench's name
  std::printf("%-26s %12s%s\n", decode.c_str(), "tokens/s",
              graphs ? "  no graphs  graph gain" : "");
  for (const json& r : j["decode"]) {
    const std::string name = "batch " + std::to_string(r["batch"].get<int64_t>());
    if (!r.contains("tokens_per_s")) {
      std::printf("  %-24s error: %s\n", name.c_str(), r["error"].get<std::string>().c_str());
      continue;
    }
    std::string extra;
    if (r.contains("tokens_per_s_no_graphs"))
      extra = fmt("  %9.1f", r["tokens_per_s_no_graphs"].get<double>()) +
              fmt("  x%.2f", r["graph_speedup"].get<double>());
    std::printf("  %-24s %12.1f%s\n", name.c_str(), r["tokens_per_s"].get<double>(), extra.c_str());
  }
  if (j.contains("decode_roofline_fraction"))
    std::printf("decode roofline (batch 1): %.1f tok/s at %.1f GB/s %s read -> %.0f%% of "
                "roofline\n",
                j["decode_roofline_tokens_per_s"].get<double>(),
                j["read_bandwidth_gb_s"].get<double>(),
                j["bandwidth_source"].get<std::string>().c_str(),
                100.0 * j["decode_roofline_fraction"].get<double>());
}

int run_bench(const BenchArgs& a) {
  require(a.repeats >= 1, "--repeats must be at least 1");
  std::set<int64_t> prefill = parse_sizes(a.prefill, "--prefill");
  std::set<int64_t> batches = parse_sizes(a.batches, "--batches");
  if (a.prompt_tokens > 0) prefill.insert(a.prompt_tokens);
  if (a.gen_tokens > 0) batches.insert(1);  // the roofline row
  else batches.clear();
  LoadedModel lm = load_model(a.model);
  Model& m = *lm.model;
  const ModelConfig& c = m.config();
  require(a.depth + a.gen_tokens < c.max_position_embeddings,
          "--depth " + std::to_string(a.depth) + " + -n " + std::to_string(a.gen_tokens) +
              " decode steps need positions beyond max_position_embeddings (" +
              std::to_string(c.max_position_embeddings) + ")");
  const bool single = lm.comm->world().size == 1;
  std::mt19937 rng(42);
  json j = {{"device", m.backend().name()}, {"weights", a.model.weights},
            {"lm_head", a.model.lm_head}, {"embeddings", a.model.embeddings},
            {"repeats", a.repeats}, {"threads", a.model.threads},
            {"decode_tokens", a.gen_tokens}, {"depth", a.depth},
            {"cuda_graphs", m.backend().step_capture()},
            {"flops_counted", kFlopsCounted}, {"prefill", json::array()},
            {"decode", json::array()}};
  for (int64_t p : prefill) j["prefill"].push_back(prefill_row(m, p, a, rng, single));
  for (int64_t b : batches) j["decode"].push_back(decode_row(m, b, a, rng, single));
  const StepCaptureStats st = m.backend().step_capture_stats();
  j["graph_stats"] = {{"captures", st.captures}, {"replays", st.replays},
                      {"failures", st.failures}, {"eager", st.eager}};

  const ModelWeights& w = m.weights();
  // Batch 1's step s attends to depth + s + 1 tokens: on average depth + (n + 1) / 2.
  const uint64_t kv_token = kv_bytes_per_token(m);
  const double kv_step = double(kv_token) * (double(a.depth) + double(a.gen_tokens + 1) / 2);
  const uint64_t step_bytes = decode_step_bytes(w);
  double bw = 0;
  std::string source = "host";
#ifdef TESSERA_HAVE_CUDA
  if (m.backend().device() == Device::CUDA) {
    bw = cuda_measure_read_bandwidth();
    source = "device";
  }
#endif
  if (source == "host") bw = measure_read_bandwidth(a.model.threads);
  if (!lm.comm->world().is_root()) return 0;  // only rank 0 writes results
  j.update({{"weight_bytes", w.bytes}, {"decode_bytes_per_token", step_bytes},
            {"kv_bytes_per_context_token", kv_token}, {"decode_kv_bytes_per_step", kv_step},
            {"read_bandwidth_gb_s", bw / 1e9}, {"bandwidth_source", source}});
  bool failed = false;
  for (const json& r : j["prefill"]) {
    failed |= r.contains("error");
    if (r["tokens"] == a.prompt_tokens && r.contains("tokens_per_s")) {
      j["prefill_tokens"] = a.prompt_tokens;
      j["prefill_tokens_per_s"] = r["tokens_per_s"];
    }
  }
  for (json& r : j["decode"]) {
    failed |= r.contains("error");
    if (r["batch"] != 1 || !r.contains("tokens_per_s") || bw <= 0) continue;
    const double roofline = bw / (double(step_bytes) + kv_step);
    const double tg = r["tokens_per_s"].get<double>();
    r["roofline_fraction"] = tg / roofline;
    j.update({{"decode_tokens_per_s", tg}, {"decode_roofline_tokens_per_s", roofline},
              {"decode_roofline_fraction", tg / roofline}});
  }
  if (a.json)
    std::cout << j.dump() << std::endl;
  else
    print_table(j, c, w);
  return failed ? 1 : 0;
}

}  // namespace

CommandRunner register_bench(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  CLI::App* cmd = app.add_subcommand("bench", "Measure prefill and decode throughput");
  add_model_options(cmd, a->model);
  add_config_option(cmd);
  cmd->add_option("-p,--prompt-tokens", a->prompt_tokens, "Prefill test length (0: none)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--prefill", a->prefill,
                  "More prefill lengths, comma-separated (tokens/s and TFLOP/s each)")
      ->capture_default_str();
  cmd->add_option("-n,--gen-tokens", a->gen_tokens, "Decode steps per row (0: no decode rows)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--batches", a->batches,
                  "Decode batch sizes, comma-separated (batch 1 always runs: the roofline row)")
      ->capture_default_str();
  cmd->add_option("-d,--depth", a->depth,
                  "Context tokens each decode sequence holds before the timed steps (prefilled, "
                  "untimed; llama-bench's -d)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("-r,--repeats", a->repeats, "Repetitions (median reported)");
  cmd->add_flag("--json", a->json, "Print one JSON object on the last line");
  return [a] { return run_bench(*a); };
}

}  // namespace tessera

// tessera bench: prefill and decode throughput, like llama-bench's pp/tg tests, and decode
// as a fraction of the memory-bandwidth roofline.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>

#include "launcher/bandwidth.h"
#include "launcher/commands.h"
#include "launcher/model_loading.h"
#include "runtime/error.h"
#include "runtime/sequence.h"

namespace tessera {
namespace {

struct BenchArgs {
  ModelArgs model;
  int64_t prompt_tokens = 128, gen_tokens = 64, repeats = 3;
  bool json = false;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// One run: prefill `pp` random tokens as one batch (tokens/s), then, in a fresh cache,
// decode `tg` tokens one step at a time from a 1-token context (tokens/s).
std::pair<double, double> run_once(Model& m, int64_t pp, int64_t tg, std::mt19937& rng) {
  using clock = std::chrono::steady_clock;
  const int64_t bs = 16, V = m.config().vocab_size;
  std::uniform_int_distribution<int32_t> tok(0, int32_t(V - 1));
  const int64_t cap = std::max(pp, tg + 1);
  KvCache kv(m.backend(), m.kv_shape((cap + bs - 1) / bs, bs));
  BlockAllocator alloc(kv.shape().num_blocks);
  double pp_tps = 0, tg_tps = 0;
  if (pp > 0) {
    Sequence s;
    for (int64_t i = 0; i < pp; ++i) s.tokens.push_back(tok(rng));
    s.reserve(alloc, pp, bs);
    BatchBuilder bb(bs);
    bb.add(s, pp, false);
    Batch b = bb.build();
    auto t0 = clock::now();
    m.forward(b, kv);
    pp_tps = double(pp) / std::chrono::duration<double>(clock::now() - t0).count();
    s.release(alloc);
  }
  if (tg > 0) {
    Sequence s;
    s.tokens.push_back(tok(rng));
    s.reserve(alloc, tg + 1, bs);
    auto t0 = clock::now();
    for (int64_t i = 0; i < tg; ++i) {
      BatchBuilder bb(bs);
      bb.add(s, 1, false);
      std::vector<float> logits = m.forward(bb.build(), kv);
      s.num_cached += 1;
      s.tokens.push_back(int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin()));
    }
    tg_tps = double(tg) / std::chrono::duration<double>(clock::now() - t0).count();
    s.release(alloc);
  }
  return {pp_tps, tg_tps};
}

int run_bench(const BenchArgs& a) {
  require(a.repeats >= 1, "--repeats must be at least 1");
  LoadedModel lm = load_model(a.model);
  Model& m = *lm.model;
  const ModelConfig& c = m.config();
  std::mt19937 rng(42);
  run_once(m, std::min<int64_t>(a.prompt_tokens, 16), std::min<int64_t>(a.gen_tokens, 2), rng);
  std::vector<double> pps, tgs;
  for (int64_t r = 0; r < a.repeats; ++r) {
    auto [pp, tg] = run_once(m, a.prompt_tokens, a.gen_tokens, rng);
    pps.push_back(pp);
    tgs.push_back(tg);
  }
  // Bytes one decode step must read: every layer weight and lm_head once, one embedding row.
  const ModelWeights& w = m.weights();
  uint64_t step_bytes = w.bytes;
  const uint64_t embed_bytes = uint64_t(w.embed.nbytes());
  if (w.lm_head.weight.data != w.embed.data)  // untied: the embedding table is not read
    step_bytes -= embed_bytes - embed_bytes / uint64_t(w.embed.dim(0));
  const double bw = measure_read_bandwidth(a.model.threads);
  if (!lm.comm->world().is_root()) return 0;  // only rank 0 writes results
  const double tg = median(tgs), pp = median(pps);
  const double roofline = bw / double(step_bytes);
  if (a.json) {
    nlohmann::json j = {{"prefill_tokens", a.prompt_tokens}, {"decode_tokens", a.gen_tokens},
                        {"prefill_tokens_per_s", pp}, {"decode_tokens_per_s", tg},
                        {"weight_bytes", w.bytes}, {"decode_bytes_per_token", step_bytes},
                        {"read_bandwidth_gb_s", bw / 1e9}, {"decode_roofline_fraction", tg / roofline},
                        {"threads", a.model.threads}};
    std::cout << j.dump() << std::endl;
  } else {
    std::printf("model: %s, hidden %lld, layers %lld, vocab %lld, weights %.1f MiB\n",
                c.model_type.c_str(), (long long)c.hidden_size, (long long)c.num_layers,
                (long long)c.vocab_size, double(w.bytes) / 1048576.0);
    std::printf("pp%lld: %.1f tok/s   tg%lld: %.1f tok/s   (median of %lld)\n",
                (long long)a.prompt_tokens, pp, (long long)a.gen_tokens, tg,
                (long long)a.repeats);
    std::printf("decode roofline: %.1f tok/s at %.1f GB/s read -> %.0f%% of roofline\n",
                roofline, bw / 1e9, 100.0 * tg / roofline);
  }
  return 0;
}

}  // namespace

CommandRunner register_bench(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  CLI::App* cmd = app.add_subcommand("bench", "Measure prefill and decode throughput");
  add_model_options(cmd, a->model);
  cmd->add_option("-p,--prompt-tokens", a->prompt_tokens, "Prefill test length")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("-n,--gen-tokens", a->gen_tokens, "Decode test length")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("-r,--repeats", a->repeats, "Repetitions (median reported)");
  cmd->add_flag("--json", a->json, "Print one JSON object on the last line");
  return [a] { return run_bench(*a); };
}

}  // namespace tessera

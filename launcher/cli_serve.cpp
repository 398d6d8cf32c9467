// tessera serve: the OpenAI-compatible HTTP server. Rank 0 runs the engine and the server;
// under tensor parallel the other ranks run the step loop on their shards.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "launcher/commands.h"
#include "launcher/cli_parse.h"
#include "launcher/config_file.h"
#include "launcher/http_server.h"
#include "launcher/model_loading.h"
#include "launcher/openai_routes.h"
#include "launcher/startup_plan.h"
#include "parallel/world_comm.h"
#include "runtime/engine.h"
#include "runtime/error.h"

namespace tessera {
namespace {

struct ServeArgs {
  ModelArgs model;
  std::string host = "127.0.0.1", api_key, served_model_name, tokenizer_dir, kv_cache_memory;
  std::string max_model_len;  // empty: the model's max; "auto": the longest the plan fits
  double gpu_memory_utilization = 0.90;
  int port = 8000;
  int64_t max_num_seqs = 64, max_num_batched_tokens = 2048, block_size = 16;
  uint64_t seed = 0;
  int http_threads = 2;
  std::string max_body = "8MiB";
};

// "4GiB", "512MiB", "1e9", "2000000": bytes.
int64_t parse_bytes(const std::string& flag, const std::string& text) {
  const auto [v, unit] = split_number_unit(text);
  double scale = 0;
  for (auto [name, s] : {std::pair<const char*, double>{"", 1}, {"B", 1}, {"KiB", 1024.0},
                         {"MiB", 1048576.0}, {"GiB", 1073741824.0}, {"KB", 1e3}, {"MB", 1e6},
                         {"GB", 1e9}})
    if (unit == name) scale = s;
  require(unit != text && scale > 0 && v > 0,
          flag + ": \"" + text + "\" is not a size (e.g. 4GiB, 512MiB, 1000000)");
  return int64_t(v * scale);
}

// Bytes of host memory the kernel says are available (MemAvailable).
int64_t available_host_memory() {
  std::ifstream f("/proc/meminfo");
  std::string key;
  int64_t kib = 0;
  while (f >> key >> kib)
    if (key == "MemAvailable:") return kib * 1024;
  return int64_t(4) << 30;
}

// KV blocks from the budget, capped at what max_num_seqs full-length sequences can use.
int64_t plan_kv_blocks(const ServeArgs& a, const Model& model, int64_t max_model_len) {
  const int64_t per_block = model.kv_shape(1, a.block_size).bytes_per_block();
  int64_t budget;
  if (!a.kv_cache_memory.empty()) {
    budget = parse_bytes("--kv-cache-memory", a.kv_cache_memory);
  } else {
    // CPU default: a quarter of the available memory, at most 4 GiB (vLLM's CPU default).
    budget = std::min<int64_t>(int64_t(4) << 30, available_host_memory() / 4);
  }
  const int64_t blocks_per_seq = (max_model_len + a.block_size - 1) / a.block_size;
  const int64_t blocks = std::min(budget / per_block, blocks_per_seq * a.max_num_seqs);
  require(blocks >= blocks_per_seq,
          "the KV cache budget of " + std::to_string(budget >> 20) + " MiB holds " +
              std::to_string(budget / per_block * a.block_size) +
              " tokens, fewer than --max-model-len " + std::to_string(max_model_len) +
              ": raise --kv-cache-memory or lower --max-model-len");
  return blocks;
}

int run_serve(const ServeArgs& a) {
  require(a.port >= 0 && a.port <= 65535, "--port must be in [0, 65535]");
  require(a.max_num_seqs >= 1, "--max-num-seqs must be at least 1");
  require(a.max_num_batched_tokens >= 1, "--max-num-batched-tokens must be at least 1");
  require(a.block_size >= 1 && a.block_size <= 256, "--block-size must be in [1, 256]");
  require(a.gpu_memory_utilization > 0 && a.gpu_memory_utilization <= 1,
          "--gpu-memory-utilization must be in (0, 1]");
  StartupPlanInputs in;
  in.max_model_len_auto = a.max_model_len == "auto";
  if (!a.max_model_len.empty() && !in.max_model_len_auto) {
    const auto v = parse_integer(a.max_model_len);
    require(v && *v >= 1, "--max-model-len must be a positive integer or auto (got \"" +
                              a.max_model_len + "\")");
    in.max_model_len = *v;
  }
  in.gpu_memory_utilization = a.gpu_memory_utilization;
  in.max_num_seqs = a.max_num_seqs;
  in.max_num_batched_tokens = a.max_num_batched_tokens;
  in.block_size = a.block_size;
  ModelArgs margs = a.model;
  const World w = make_world_comm()->world();
  const StartupPlan sp = plan_startup(margs, in, w.size, w.local_rank, w.is_root());
  LoadedModel lm = load_model(margs);
  Model& model = *lm.model;
  const ModelConfig& cfg = model.config();
  const int64_t max_len = in.max_model_len_auto ? sp.plan.max_model_len
                          : in.max_model_len > 0 ? in.max_model_len
                                                 : cfg.max_position_embeddings;
  require(max_len <= cfg.max_position_embeddings,
          "--max-model-len " + std::to_string(max_len) + " exceeds the model's "
          "max_position_embeddings (" + std::to_string(cfg.max_position_embeddings) + ")");
  // On a GPU the plan's blocks are the cache (unless a budget is given); on the CPU the
  // budget is --kv-cache-memory or its default.
  const bool from_plan = sp.on_gpu && a.kv_cache_memory.empty();
  int64_t num_blocks = 0;
  if (lm.comm->world().is_root())
    num_blocks = from_plan ? sp.plan.kv_blocks : plan_kv_blocks(a, model, max_len);
  lm.comm->broadcast(&num_blocks, sizeof num_blocks, 0);
  if (!lm.comm->world().is_root()) {
    run_worker_loop(model, num_blocks, a.block_size, *lm.comm);
    return 0;
  }

  const std::string tok_dir = a.tokenizer_dir.empty() ? a.model.model_dir : a.tokenizer_dir;
  require(!tok_dir.empty(), "serve needs a tokenizer: give --model DIR or --tokenizer DIR");
  Tokenizer tokenizer = Tokenizer::from_dir(tok_dir);
  std::optional<ChatTemplate> chat;
  try {
    chat = ChatTemplate::from_tokenizer_config(tok_dir);
  } catch (const UserError& e) {
    std::fprintf(stderr, "notice: %s; /v1/chat/completions is disabled\n", e.what());
  }
  ServedModel served;
  served.name = a.served_model_name.empty()
                    ? std::filesystem::path(tok_dir).filename().string()
                    : a.served_model_name;
  if (served.name.empty()) served.name = std::filesystem::path(tok_dir).parent_path().filename();
  served.tokenizer = &tokenizer;
  served.chat_template = chat ? &*chat : nullptr;
  served.max_model_len = max_len;
  served.vocab_size = cfg.vocab_size;
  served.created = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch()).count();

  EngineConfig ec;
  ec.scheduler = {a.max_num_seqs, a.max_num_batched_tokens, a.block_size};
  ec.num_blocks = num_blocks;
  ec.max_model_len = max_len;
  ec.seed = a.seed;
  Engine engine(model, ec, lm.comm.get());
  if (from_plan)  // the KV cache is allocated now: the plan against what the device says
    report_plan_vs_device(sp, margs, w.rank, w.local_rank,
                          num_blocks * model.kv_shape(1, a.block_size).bytes_per_block());

  HttpServerOptions ho;
  ho.host = a.host;
  ho.port = a.port;
  ho.api_key = a.api_key;
  ho.threads = a.http_threads;
  ho.max_body_bytes = size_t(parse_bytes("--max-body", a.max_body));
  HttpServer server(ho);
  add_openai_routes(server, engine, served);
  server.stop_on_signals();
  engine.start();
  std::fprintf(stderr, "tessera: serving %s on http://%s:%d (KV cache: %lld blocks of %lld "
               "tokens, max-model-len %lld)\n", served.name.c_str(), a.host.c_str(),
               server.port(), (long long)num_blocks, (long long)a.block_size, (long long)max_len);
  std::fflush(stderr);
  server.run();
  engine.stop();
  // The pool itself, not a gauge: every block must be back once no request is alive.
  const int64_t in_use = engine.blocks_used();
  std::fprintf(stderr, "tessera: shut down; KV blocks in use at exit: %lld of %lld\n",
               (long long)in_use, (long long)num_blocks);
  return in_use == 0 ? 0 : 1;
}

}  // namespace

CommandRunner register_serve(CLI::App& app) {
  auto a = std::make_shared<ServeArgs>();
  CLI::App* cmd = app.add_subcommand("serve", "Serve the OpenAI-compatible HTTP API");
  add_model_options(cmd, a->model);
  add_config_option(cmd);
  cmd->add_option("--host", a->host, "Address to bind (default 127.0.0.1: this machine only)");
  cmd->add_option("--port", a->port, "Port to listen on (0: any free port)");
  cmd->add_option("--api-key", a->api_key, "Require 'Authorization: Bearer KEY' on /v1/*");
  cmd->add_option("--served-model-name", a->served_model_name,
                  "The model id clients send (default: the model directory's name)");
  cmd->add_option("--tokenizer", a->tokenizer_dir, "Tokenizer directory (default: --model)");
  cmd->add_option("--kv-cache-memory", a->kv_cache_memory,
                  "KV cache budget, e.g. 2GiB (default: 1/4 of available memory, <= 4 GiB)");
  cmd->add_option("--max-num-seqs", a->max_num_seqs, "Sequences per step (default 64)");
  cmd->add_option("--max-num-batched-tokens", a->max_num_batched_tokens,
                  "Tokens per step; longer prompts are prefilled in chunks (default 2048)");
  cmd->add_option("--max-model-len", a->max_model_len,
                  "Prompt + output tokens per request (default: max_position_embeddings; "
                  "auto: the longest the memory plan fits)");
  cmd->add_option("--gpu-memory-utilization", a->gpu_memory_utilization,
                  "GPU: fraction of the card's memory the plan may use (default 0.90)");
  cmd->add_option("--block-size", a->block_size, "Tokens per KV block (default 16)");
  cmd->add_option("--seed", a->seed, "Seed of requests that give none");
  cmd->add_option("--http-threads", a->http_threads, "HTTP I/O threads (default 2)");
  cmd->add_option("--max-body", a->max_body, "Largest request body (default 8MiB; else 413)");
  return [a] { return run_serve(*a); };
}

}  // namespace tessera

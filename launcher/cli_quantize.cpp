// tessera quantize: writes an int4 AWQ-format checkpoint of a Hugging Face model
// (runtime/awq_checkpoint.h), with activation-aware scales and clipping searched on a
// calibration text (--method awq) or plain round-to-nearest (--method rtn). The result loads
// with `--model OUT` like any AWQ checkpoint. CPU only, one process.
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "launcher/cli_parse.h"
#include "launcher/commands.h"
#include "launcher/model_loading.h"
#include "runtime/awq_checkpoint.h"
#include "runtime/error.h"
#include "runtime/perplexity.h"
#include "runtime/tokenizer.h"

namespace tessera {
namespace {
namespace fs = std::filesystem;

struct QuantizeArgs {
  std::string model_dir, out_dir, method = "awq", calib_file;
  int64_t calib_window = 512, calib_rows = 512, group_size = 128;
  bool clip = true, json = false;
  int threads = 0;
};

const char* kSiteNames[kNumLinearInputs] = {"qkv", "o", "gate_up", "down"};

std::vector<int32_t> calibration_ids(const QuantizeArgs& a) {
  require(!a.calib_file.empty(), "--method awq needs --calib-file TEXT (a few thousand tokens "
                                 "of text like the model's use; --method rtn needs none)");
  const std::string text = read_text_file(a.calib_file, "--calib-file");
  require(fs::exists(a.model_dir + "/tokenizer.json"),
          "--calib-file needs the model's tokenizer.json in " + a.model_dir);
  std::vector<int32_t> ids = Tokenizer::from_dir(a.model_dir).encode(text, true);
  require(ids.size() >= 2, a.calib_file + " holds fewer than 2 tokens");
  return ids;
}

// --out: a directory that does not exist yet or an empty one (checked before the slow part).
void check_out_dir(const QuantizeArgs& a) {
  require(!a.out_dir.empty(), "--out DIR is required");
  std::error_code ec;
  require(!fs::equivalent(a.out_dir, a.model_dir, ec), "--out must not be the model directory");
  if (fs::exists(a.out_dir))
    require(fs::is_directory(a.out_dir) && fs::is_empty(a.out_dir),
            "--out " + a.out_dir + " exists and is not an empty directory (nothing overwritten)");
}

// Creates --out when missing; returns whether it did.
bool make_out_dir(const QuantizeArgs& a) {
  if (fs::exists(a.out_dir)) return false;
  std::error_code ec;
  fs::create_directories(a.out_dir, ec);
  require(!ec, "cannot create --out " + a.out_dir + ": " + ec.message());
  return true;
}

int run_quantize(const QuantizeArgs& a) {
  require(!a.model_dir.empty(), "--model DIR is required");
  const ModelConfig cfg = load_model_config(a.model_dir);
  AwqOptions opt;
  opt.group_size = a.group_size;
  opt.search_scales = a.method == "awq";
  opt.search_clip = a.method == "awq" && a.clip;
  check_awq_quantizable(cfg, opt);
  check_out_dir(a);
  require(a.calib_window >= 2, "--calib-window must be at least 2");
  require(a.calib_rows >= 1, "--calib-rows must be at least 1");

  std::optional<ActivationRecorder> rec;
  nlohmann::json report = {{"method", a.method}, {"group_size", a.group_size}};
  if (opt.search_scales) {
    const std::vector<int32_t> ids = calibration_ids(a);
    ModelArgs ma;
    ma.model_dir = a.model_dir;
    ma.threads = a.threads;
    LoadedModel lm = load_model(ma);
    require(lm.comm->world().size == 1, "tessera quantize runs as one process (no mpirun)");
    rec.emplace(cfg.num_layers, a.calib_rows);
    lm.model->set_activation_observer(rec->observer());
    const int64_t window = std::min(a.calib_window, cfg.max_position_embeddings);
    const PerplexityResult r = evaluate_perplexity(*lm.model, ids, window);
    lm.model->set_activation_observer({});
    std::fprintf(stderr, "tessera: calibrated on %zu tokens (windows of %lld): perplexity %.4f\n",
                 ids.size(), (long long)window, r.perplexity());
    report["calibration_tokens"] = ids.size();
    report["calibration_perplexity"] = r.perplexity();
  }
  const bool created = make_out_dir(a);
  nlohmann::json layers = nlohmann::json::array();
  try {
    write_awq_checkpoint(a.model_dir, cfg, rec ? &*rec : nullptr, opt, a.out_dir,
                         [&](const AwqLayerReport& r) {
                           nlohmann::json j = {{"layer", r.layer}};
                           std::string line;
                           for (int s = 0; s < kNumLinearInputs && opt.search_scales; ++s) {
                             const double ratio = r.rtn_loss[s] > 0 ? r.loss[s] / r.rtn_loss[s] : 1.0;
                             j[kSiteNames[s]] = {{"alpha", r.alpha[s]}, {"error_vs_rtn", ratio}};
                             char buf[96];
                             std::snprintf(buf, sizeof buf, " %s alpha %.2f (error x%.3f)",
                                           kSiteNames[s], r.alpha[s], ratio);
                             line += buf;
                           }
                           std::fprintf(stderr, "tessera: layer %lld/%lld quantized%s\n",
                                        (long long)r.layer + 1, (long long)cfg.num_layers,
                                        line.c_str());
                           layers.push_back(j);
                         });
  } catch (...) {
    if (created) fs::remove_all(a.out_dir);  // never leave a half-written checkpoint
    throw;
  }
  report["out"] = a.out_dir;
  report["layers"] = layers;
  if (a.json) {
    std::cout << report.dump() << std::endl;
  } else {
    std::printf("wrote %s: AWQ int4 checkpoint (group %lld, %s)\n", a.out_dir.c_str(),
                (long long)a.group_size,
                opt.search_scales ? (opt.search_clip ? "activation-aware scales + clipping"
                                                     : "activation-aware scales")
                                  : "round to nearest");
  }
  return 0;
}

}  // namespace

CommandRunner register_quantize(CLI::App& app) {
  auto a = std::make_shared<QuantizeArgs>();
  CLI::App* cmd = app.add_subcommand(
      "quantize", "Write an int4 AWQ checkpoint (activation-aware scales searched on a "
                  "calibration text, or plain round-to-nearest)");
  cmd->add_option("--model", a->model_dir, "Hugging Face model directory (fp32/fp16/bf16)");
  cmd->add_option("--out", a->out_dir, "Output directory (new or empty)");
  cmd->add_option("--method", a->method, "awq (calibrated scales + clipping) | rtn")
      ->check(CLI::IsMember({"awq", "rtn"}));
  cmd->add_option("--calib-file", a->calib_file, "Calibration text (--method awq)");
  cmd->add_option("--calib-window", a->calib_window,
                  "Tokens per calibration window (each from an empty KV cache; default 512)");
  cmd->add_option("--calib-rows", a->calib_rows,
                  "Activation rows kept per layer input for the error searches (default 512; "
                  "memory: rows x (3 hidden + intermediate) x 4 bytes per layer)");
  cmd->add_option("--group-size", a->group_size, "Inputs per int4 scale (default 128)");
  cmd->add_flag("!--no-clip", a->clip, "Skip the clipping search (scales only)");
  cmd->add_option("--threads", a->threads, "CPU threads (0: all cores)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--json", a->json, "Print one JSON object (the searches' choices) last");
  return [a] { return run_quantize(*a); };
}

}  // namespace tessera

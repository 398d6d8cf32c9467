// The memory plan as a table (what `tessera plan` prints, and what the engine logs at
// start-up) and as JSON.
#include <cstdio>
#include <string>

#include "runtime/memory_plan.h"

namespace tessera {
namespace {

using ojson = nlohmann::ordered_json;

std::string mib(int64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", double(bytes) / double(1 << 20));
  return buf;
}

std::string gib(int64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GiB", double(bytes) / double(1 << 30));
  return buf;
}

// One row: label, MiB, exact bytes, remark.
std::string row(const std::string& label, const std::string& mib_text, int64_t bytes,
                const std::string& remark = "") {
  char buf[256];
  std::snprintf(buf, sizeof buf, "  %-38s %10s %14lld", label.c_str(), mib_text.c_str(),
                (long long)bytes);
  std::string s = buf;
  if (!remark.empty()) s += "  " + remark;
  return s + "\n";
}

bool alike(const RankPlan& a, const RankPlan& b) {
  return a.weights.embeddings == b.weights.embeddings &&
         a.weights.embeddings_in_host == b.weights.embeddings_in_host &&
         a.weights.layers == b.weights.layers &&
         a.weights.lm_head == b.weights.lm_head && a.workspace == b.workspace &&
         a.reserve.total() == b.reserve.total() && a.kv_budget == b.kv_budget &&
         a.heads == b.heads && a.kv_heads == b.kv_heads && a.vocab_local == b.vocab_local;
}

std::string reserve_text(const RuntimeReserve& r) {
  if (r.host_process) return "(process: code, tokenizer, host buffers)";
  std::string s = "(CUDA context " + mib(r.cuda_context) + ", cuBLAS " +
                  mib(r.cublas_workspace) + ", CUDA graphs " + mib(r.cuda_graphs);
  if (r.nccl) s += ", NCCL " + mib(r.nccl);
  if (r.dequant_scratch) s += ", dequantization " + mib(r.dequant_scratch);
  return s + ")";
}

std::string rank_table(const Plan& p, const RankPlan& r, int last_rank) {
  const PlanRequest& q = p.request;
  std::string s = r.rank == last_rank ? "rank " + std::to_string(r.rank)
                                      : "ranks " + std::to_string(r.rank) + "-" +
                                            std::to_string(last_rank) + " (alike: one table)";
  char head[160];
  std::snprintf(head, sizeof head, "%-40s %10s %14s\n", s.c_str(), "MiB", "bytes");
  s = head;
  if (q.tp > 1)
    s += "  shard: " + std::to_string(r.heads) + " heads, " + std::to_string(r.kv_heads) +
         " kv heads, intermediate " + std::to_string(r.intermediate) + ", vocab rows " +
         std::to_string(r.vocab_local) + "\n";
  s += row(q.device.cuda ? "card total" : "host memory / tp", mib(r.total), r.total);
  char util[64];
  std::snprintf(util, sizeof util, "usable (x %.2f)", q.gpu_memory_utilization);
  s += row(util, mib(r.usable), r.usable);
  s += row("weights: embeddings", mib(r.weights.embeddings), r.weights.embeddings,
           r.weights.embeddings_in_host ? "(in pinned host memory: " +
                                              mib(r.weights.embeddings_in_host) + " MiB)"
                                        : "");
  s += row("weights: layers (" + std::to_string(q.model.num_layers) + " + final norm)",
           mib(r.weights.layers), r.weights.layers);
  s += row("weights: lm_head", mib(r.weights.lm_head), r.weights.lm_head,
           q.lm_head_int8 ? (q.model.tie_word_embeddings
                                 ? "(int8 copy of the tied embedding table, F32 row scales)"
                                 : "(int8, F32 row scales)")
           : q.model.tie_word_embeddings ? "(tied: shares the embedding table)"
                                         : "");
  s += row("activation workspace (" + std::to_string(q.max_num_batched_tokens) + " tokens)",
           mib(r.workspace), r.workspace);
  s += row("runtime reserve", mib(r.reserve.total()), r.reserve.total(),
           reserve_text(r.reserve));
  s += row("KV cache budget", mib(r.kv_budget), r.kv_budget);
  char kib[32];
  std::snprintf(kib, sizeof kib, "%.1f KiB", double(p.kv_bytes_per_token) / 1024.0);
  s += row(std::string("KV bytes per token (") + kv_dtype_name(p.kv) + ")", kib,
           p.kv_bytes_per_token);
  s += row("KV blocks of " + std::to_string(q.block_size) + " tokens", std::to_string(r.kv_blocks),
           r.kv_blocks * p.kv_block_bytes,
           "= " + std::to_string(r.kv_blocks * q.block_size) + " tokens");
  return s;
}

// "f16" -> "fp16": the names the flags use.
std::string compute_name(DType t) {
  return t == DType::F32 ? "fp32" : t == DType::BF16 ? "bf16" : "fp16";
}

std::string option_text(const PlanOption& o, const PlanDevice& d) {
  const std::string cards =
      o.tp > 1 ? " (" + std::to_string(o.tp) + " x " + d.name + ")" : std::string();
  return "  " + o.change + cards + ": max-model-len " + std::to_string(o.max_model_len) + ", " +
         std::to_string(o.max_concurrent_at_max_len) + " sequence(s) at full context, " +
         std::to_string(o.kv_blocks) + " KV blocks, weights " + gib(o.weights_bytes_per_rank) +
         " per rank\n";
}

// Why a plan does not fit, in one line.
std::string shortfall(const Plan& p) {
  for (const RankPlan& r : p.ranks)
    if (r.kv_budget <= 0)
      return "weights, workspace and reserve need " +
             mib(r.weights.total() + r.workspace + r.reserve.total()) + " MiB, more than the " +
             mib(r.usable) + " MiB usable on rank " + std::to_string(r.rank);
  return "the KV cache holds " + std::to_string(p.kv_tokens()) +
         " tokens, fewer than max-model-len " + std::to_string(p.max_model_len);
}

// " (lm_head int8, embeddings in host memory)" after the weight format, or "".
std::string weights_remark(const PlanRequest& q) {
  std::string s = q.lm_head_int8 ? "lm_head int8" : "";
  if (q.embeddings_host && q.device.cuda)
    s += (s.empty() ? "" : ", ") + std::string("embeddings in host memory");
  return s.empty() ? s : " (" + s + ")";
}

ojson weights_json(const WeightBytes& w) {
  return {{"embeddings", w.embeddings}, {"layers", w.layers}, {"lm_head", w.lm_head},
          {"total", w.total()}, {"embeddings_in_host", w.embeddings_in_host}};
}

}  // namespace

std::string plan_table(const Plan& p, const std::string& model_name) {
  const PlanRequest& q = p.request;
  const ModelConfig& c = q.model;
  char line[512];
  std::snprintf(line, sizeof line,
                "%s (%s: %lld layers, hidden %lld, %lld heads / %lld kv heads x %lld, "
                "intermediate %lld, vocab %lld, %lld positions)\n",
                model_name.c_str(), c.model_type.c_str(), (long long)c.num_layers,
                (long long)c.hidden_size, (long long)c.num_heads, (long long)c.num_kv_heads,
                (long long)c.head_dim, (long long)c.intermediate_size, (long long)c.vocab_size,
                (long long)c.max_position_embeddings);
  std::string s = line;
  std::snprintf(line, sizeof line,
                "on %s (%s MiB), tp %d: weights %s%s, KV cache %s, compute %s; block size "
                "%lld, max-num-batched-tokens %lld, max-num-seqs %lld\n\n",
                q.device.name.c_str(), mib(q.device.total_bytes).c_str(), q.tp,
                weight_choice_name(p.weights), weights_remark(q).c_str(),
                kv_dtype_name(p.kv), compute_name(p.compute).c_str(),
                (long long)q.block_size, (long long)q.max_num_batched_tokens,
                (long long)q.max_num_seqs);
  s += line;
  for (size_t i = 0; i < p.ranks.size();) {
    size_t j = i;
    while (j + 1 < p.ranks.size() && alike(p.ranks[i], p.ranks[j + 1])) ++j;
    s += rank_table(p, p.ranks[i], p.ranks[j].rank) + "\n";
    i = j + 1;
  }
  for (const std::string& n : p.notes) s += "note: " + n + "\n";
  if (p.fits) {
    s += "fits: max-model-len " + std::to_string(p.max_model_len) + ", " +
         std::to_string(p.max_concurrent_at_max_len) +
         " concurrent sequence(s) at full context (KV cache: " + std::to_string(p.kv_blocks) +
         " blocks = " + std::to_string(p.kv_tokens()) + " tokens per rank)\n";
    return s;
  }
  s += "does not fit: " + shortfall(p) + "\n";
  if (p.options.empty()) {
    s += "no option fits (tried int8/int4 weights, an int8 lm_head, embeddings in host "
         "memory, int8 KV cache, more GPUs and a shorter context)\n";
  } else {
    s += "options that fit:\n";
    for (const PlanOption& o : p.options) s += option_text(o, q.device);
  }
  return s;
}

ojson plan_json(const Plan& p, const std::string& model_name) {
  const PlanRequest& q = p.request;
  ojson j;
  j["model"] = model_name;
  j["fits"] = p.fits;
  j["max_model_len"] = p.max_model_len;
  j["max_concurrent_at_max_len"] = p.max_concurrent_at_max_len;
  j["kv_blocks"] = p.kv_blocks;
  j["kv_tokens"] = p.kv_tokens();
  j["kv_bytes_per_token"] = p.kv_bytes_per_token;
  j["weights_bytes_per_rank"] = p.weights_bytes_per_rank();
  j["weights_bytes"] = weights_json(p.ranks.at(0).weights);  // rank 0 (the largest)
  j["weights"] = weight_choice_name(p.weights);
  j["lm_head"] = q.lm_head_int8 ? "int8" : "stored";
  j["embeddings"] = q.embeddings_host ? "host" : "device";
  j["kv_cache"] = kv_dtype_name(p.kv);
  j["compute_dtype"] = compute_name(p.compute);
  j["gpu"] = {{"name", q.device.name}, {"total_bytes", q.device.total_bytes},
              {"cuda", q.device.cuda}};
  j["tp"] = q.tp;
  j["gpu_memory_utilization"] = q.gpu_memory_utilization;
  j["block_size"] = q.block_size;
  j["max_num_batched_tokens"] = q.max_num_batched_tokens;
  j["max_num_seqs"] = q.max_num_seqs;
  j["ranks"] = ojson::array();
  for (const RankPlan& r : p.ranks) {
    const RuntimeReserve& v = r.reserve;
    j["ranks"].push_back(
        {{"rank", r.rank},
         {"heads", r.heads},
         {"kv_heads", r.kv_heads},
         {"intermediate", r.intermediate},
         {"vocab_rows", r.vocab_local},
         {"total_bytes", r.total},
         {"usable_bytes", r.usable},
         {"weights_bytes", weights_json(r.weights)},
         {"workspace_bytes", r.workspace},
         {"reserve_bytes", v.total()},
         {"reserve", {{"cuda_context", v.cuda_context}, {"cublas_workspace", v.cublas_workspace},
                      {"cuda_graphs", v.cuda_graphs}, {"nccl", v.nccl},
                      {"host_process", v.host_process}, {"dequant_scratch", v.dequant_scratch}}},
         {"kv_budget_bytes", r.kv_budget},
         {"kv_blocks", r.kv_blocks}});
  }
  j["notes"] = p.notes;
  j["options"] = ojson::array();
  for (const PlanOption& o : p.options)
    j["options"].push_back({{"change", o.change},
                            {"fits", o.fits},
                            {"tp", o.tp},
                            {"max_model_len", o.max_model_len},
                            {"max_concurrent_at_max_len", o.max_concurrent_at_max_len},
                            {"kv_blocks", o.kv_blocks},
                            {"weights_bytes_per_rank", o.weights_bytes_per_rank},
                            {"kv_bytes_per_token", o.kv_bytes_per_token}});
  return j;
}

}  // namespace tessera

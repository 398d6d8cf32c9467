#include "runtime/weights.h"

#include "kernels/embedding.h"
#include "parallel/shard_rules.h"
#include "runtime/error.h"
#include "runtime/load_progress.h"
#include "runtime/prequantized.h"
#include "runtime/quant.h"

namespace tessera {

std::string shape_string(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

namespace {

struct Loader {
  TensorSource& src;
  const ModelConfig& cfg;
  Backend& backend;
  const World& world;
  WeightFormat format;  // of the *_proj weights
  uint64_t bytes = 0;

  // This rank's part of `name`, checked against the full shape the config implies.
  Tensor take(const std::string& name, const std::vector<int64_t>& expected) {
    require(src.has(name), "missing " + src.describe(name));
    const std::vector<int64_t> actual = src.shape(name);
    require(actual == expected, src.describe(name) + " has shape " + shape_string(actual) +
                                    ", expected " + shape_string(expected) +
                                    " from config.json");
    const ShardRule rule = shard_rule_for(name);
    Tensor host;
    if (rule.kind == SplitKind::Row && expected.size() == 2) {
      Range r = shard_range(rule, cfg, expected[1], world);
      host = src.cols(name, r.begin, r.end);
    } else if (rule.kind == SplitKind::Replicated || (rule.kind == SplitKind::Row)) {
      host = src.rows(name, 0, expected[0]);
    } else {
      Range r = shard_range(rule, cfg, expected[0], world);
      host = src.rows(name, r.begin, r.end);
    }
    require(host.dtype == DType::F32 || host.dtype == DType::F16 || host.dtype == DType::BF16,
            src.describe(name) + " has dtype " + dtype_name(host.dtype) +
                ", expected F32, F16 or BF16");
    return host;
  }

  Tensor take_counted(const std::string& name, const std::vector<int64_t>& expected) {
    Tensor host = take(name, expected);
    bytes += host.nbytes();
    return host;
  }

  Tensor take_f32(const std::string& name, const std::vector<int64_t>& expected) {
    Tensor t = take_counted(name, expected);
    if (t.dtype != DType::F32) {
      Tensor f = host_tensor(DType::F32, {t.numel()});
      convert_to_f32(t.data, t.dtype, t.numel(), f.ptr<float>());
      t = f;
    }
    return backend.upload(t);
  }

  // Whether a *_proj layer comes packed (AWQ / GPTQ): in a pre-quantized checkpoint every one
  // that its quantization_config does not leave unquantized (PrequantConfig::skips), as the
  // memory plan counts them (runtime/memory_plan.cpp).
  bool packed(const std::string& prefix) const {
    const PrequantConfig& pq = cfg.prequant;
    const bool has_q = src.has(prefix + ".qweight"), has_w = src.has(prefix + ".weight");
    if (!pq.active()) return has_q;  // load_prequantized_linear says what is wrong
    if (pq.skips(prefix)) {
      require(has_w || !has_q, src.describe(prefix + ".qweight") +
                                   ": packed, but quantization_config leaves it unquantized "
                                   "(modules_to_not_convert or a dynamic exclusion names it; "
                                   "expected a dense " + prefix + ".weight)");
      return false;
    }
    require(has_q || !has_w, src.describe(prefix + ".weight") + ": unquantized in a " +
                                 pq.name() + " checkpoint, but neither quantization_config."
                                 "modules_to_not_convert nor a dynamic exclusion names it");
    return true;
  }

  // A *_proj layer: quantized to `format` (this rank's slice; runtime/quant.h) or as stored.
  LinearWeight linear(const std::string& prefix, int64_t out_f, int64_t in_f, bool bias) {
    const std::string name = prefix + ".weight";
    LinearWeight host =
        packed(prefix)
            ? load_prequantized_linear(src, prefix, out_f, in_f, cfg, world)
            : quantize_weight(take(name, {out_f, in_f}), format, src.describe(name));
    bytes += linear_weight_bytes(host);
    LinearWeight lw = backend.upload_linear(host);
    lw.partial_sum = shard_rule_for(prefix).kind == SplitKind::Row && world.size > 1;
    if (bias) {
      // A row-split layer's bias must be added once: only rank 0 holds it.
      const bool row = shard_rule_for(prefix).kind == SplitKind::Row;
      if (!row || world.rank == 0) lw.bias = take_f32(prefix + ".bias", {out_f});
    }
    return lw;
  }
};

}  // namespace

ModelWeights load_model_weights(TensorSource& src, const ModelConfig& cfg, Backend& backend,
                                const World& world, WeightFormat proj_format,
                                WeightFormat lm_head_format, EmbeddingPlacement embeddings) {
  check_tp_compatible(cfg, world.size);
  require(lm_head_format != WeightFormat::Int4, "lm_head may be stored or int8, not int4");
  if (embeddings == EmbeddingPlacement::Host)
    check_host_embeddings(cfg, lm_head_format == WeightFormat::Int8);
  require(!cfg.prequant.active() || proj_format != WeightFormat::Int8,
          std::string("this checkpoint is already 4-bit (") + cfg.prequant.name() +
              "): --weights int8 cannot apply; use --weights stored (or auto)");
  // The layers a pre-quantized checkpoint left unquantized on purpose (modules_to_not_convert,
  // dynamic exclusions) load as stored whatever --weights says.
  Loader ld{src, cfg, backend, world, cfg.prequant.active() ? WeightFormat::Dense : proj_format};
  ModelWeights w;
  const int64_t H = cfg.hidden_size, I = cfg.intermediate_size, V = cfg.vocab_size;
  const LocalDims local = local_dims(cfg, world);
  w.vocab_begin = local.vocab_begin;

  std::string embed_name = "model.embed_tokens.weight";
  // Tied checkpoints may store only one of the two tables (TinyStories-656K keeps lm_head).
  if (cfg.tie_word_embeddings && !src.has(embed_name) && src.has("lm_head.weight"))
    embed_name = "lm_head.weight";
  // Layers, then embeddings and lm_head as one step each.
  LoadProgress progress(cfg.num_layers + 2, world.rank == 0);
  Tensor embed_host = ld.take_counted(embed_name, {V, H});
  w.embed = embeddings == EmbeddingPlacement::Host ? backend.upload_host_resident(embed_host)
                                                   : backend.upload(embed_host);
  const bool int8_copy_of_table =
      cfg.tie_word_embeddings && lm_head_format == WeightFormat::Int8;
  if (!int8_copy_of_table) embed_host = Tensor{};  // not needed again: free a host copy
  progress.step(ld.bytes);

  for (int64_t l = 0; l < cfg.num_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    LayerWeights lw;
    lw.input_norm = ld.take_f32(p + "input_layernorm.weight", {H});
    lw.post_attention_norm = ld.take_f32(p + "post_attention_layernorm.weight", {H});
    lw.q = ld.linear(p + "self_attn.q_proj", cfg.q_size(), H, cfg.attention_bias);
    lw.k = ld.linear(p + "self_attn.k_proj", cfg.kv_size(), H, cfg.attention_bias);
    lw.v = ld.linear(p + "self_attn.v_proj", cfg.kv_size(), H, cfg.attention_bias);
    lw.o = ld.linear(p + "self_attn.o_proj", H, cfg.q_size(), false);
    lw.gate = ld.linear(p + "mlp.gate_proj", I, H, cfg.mlp_bias);
    lw.up = ld.linear(p + "mlp.up_proj", I, H, cfg.mlp_bias);
    lw.down = ld.linear(p + "mlp.down_proj", H, I, cfg.mlp_bias);
    w.layers.push_back(std::move(lw));
    progress.step(ld.bytes);
  }
  w.final_norm = ld.take_f32("model.norm.weight", {H});
  if (lm_head_format == WeightFormat::Int8) {
    // A tied model keeps its table for the embedding lookup and gets an int8 copy for the
    // logits (a lookup reads one row a token; lm_head reads them all every step).
    const std::string name = cfg.tie_word_embeddings ? embed_name : "lm_head.weight";
    const Tensor host = int8_copy_of_table ? embed_host : ld.take(name, {V, H});
    const LinearWeight q = quantize_weight(host, WeightFormat::Int8, src.describe(name));
    ld.bytes += linear_weight_bytes(q);
    w.lm_head = backend.upload_linear(q);
  } else if (cfg.tie_word_embeddings) {
    w.lm_head.weight = w.embed;
  } else {
    w.lm_head.weight = backend.upload(ld.take_counted("lm_head.weight", {V, H}));
  }
  progress.step(ld.bytes);
  w.bytes = ld.bytes;
  return w;
}

}  // namespace tessera

// Model: THE forward pass, written once against the Backend op interface. It runs one Batch
// (prefill, decode or both) on this rank's shard and returns the requested logits.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <vector>

#include "parallel/comm.h"
#include "runtime/backend.h"
#include "runtime/kv_cache.h"
#include "runtime/model_config.h"
#include "runtime/weights.h"

namespace tessera {

// The input a linear layer reads, per layer: the calibration sites of `tessera quantize`.
enum class LinearInput { kAttention /* q, k, v */, kAttentionOut /* o */, kMlp /* gate, up */,
                         kMlpAct /* down */ };
constexpr int kNumLinearInputs = 4;
// Called with each site's activations x [tokens, in_features_local] (host F32) during forward.
using ActivationObserver = std::function<void(int64_t layer, LinearInput site, const Tensor& x)>;

class Model {
 public:
  Model(const ModelConfig& cfg, ModelWeights weights, Backend& backend, Comm& comm);

  const ModelConfig& config() const { return cfg_; }
  const ModelWeights& weights() const { return w_; }
  Backend& backend() { return backend_; }
  // The KV cache shape this rank needs for `num_blocks` blocks.
  KvCacheShape kv_shape(int64_t num_blocks, int64_t block_size) const;
  // The KV cache's dtype in kv_shape(): by default F32 on the CPU and the compute dtype on a
  // GPU; I8 (per-token, per-head scales) on request. std::invalid_argument for any other.
  void set_kv_dtype(DType dtype);
  DType kv_dtype() const { return kv_dtype_; }

  // Runs the batch and returns F32 logits [batch.num_logits(), vocab_size] on the host.
  // Token ids must be inside the vocabulary (checked); K/V of the batch's tokens are written
  // to `kv` at their slots. Decode-like steps (every sequence one new token, at most
  // kMaxGraphTokens of them, one rank) run through Backend::run_captured: CUDA graphs.
  std::vector<float> forward(const Batch& batch, KvCache& kv);

  static constexpr int64_t kMaxGraphTokens = 256;

  // Calibration hook (CPU backend with F32 activations only: UserError otherwise); an empty
  // function removes it. Steps with an observer never run as captured graphs.
  void set_activation_observer(ActivationObserver observer);

 private:
  // Named intermediate tensors, reused across steps. reserve_workspace grows them (and bumps
  // generation_) before a step; inside the device part of a step buf() only hands out views.
  enum Slot { kResidual, kNormed, kQ, kK, kV, kAttn, kProj, kGate, kUp, kAct, kPermuted, kLast, kLogits };
  Tensor buf(Slot slot, DType dtype, std::initializer_list<int64_t> dims);
  void reserve_workspace(int64_t n, int64_t num_logits);

  // The device-side part of a step: embedding .. lm_head into `logits` [num_logits, vocab_local]
  // (F32). Reads batch data only through bt (so a CUDA graph of it can be replayed).
  void device_step(const BatchTensors& bt, KvCache& kv, int64_t num_logits, Tensor logits);
  bool graph_step(const Batch& batch) const;
  StepKey step_key(const Batch& batch, KvCache& kv) const;

  // out = x @ w^T, all-reduced when w is a row-split shard (partial sums).
  void project(const Tensor& x, const LinearWeight& w, Tensor& out);
  void observe(const LayerWeights& lw, LinearInput site, const Tensor& x);
  Tensor attention_block(const LayerWeights& lw, KvLayer& cache, const Tensor& h,
                         const BatchTensors& bt, int64_t block_size);
  Tensor mlp_block(const LayerWeights& lw, const Tensor& h, int64_t n);

  ModelConfig cfg_;
  ModelWeights w_;
  Backend& backend_;
  Comm& comm_;
  int64_t heads_local_, kv_heads_local_, inter_local_;
  RopeTable rope_;
  AttentionParams attn_;
  DType kv_dtype_;
  std::map<Slot, Tensor> workspace_;
  uint64_t generation_;    // process-unique; renewed whenever a workspace buffer is reallocated
  int64_t permuted_width_ = 0;  // widest input_perm of any layer (0: none)
  ActivationObserver observer_;
  bool in_step_ = false;   // inside device_step: workspace_ must not grow
};

}  // namespace tessera

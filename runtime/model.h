// Model: THE forward pass, written once against the Backend op interface. It runs one Batch
// (prefill, decode or both) on this rank's shard and returns the requested logits.
#pragma once
#include <map>
#include <vector>

#include "parallel/comm.h"
#include "runtime/backend.h"
#include "runtime/kv_cache.h"
#include "runtime/model_config.h"
#include "runtime/weights.h"

namespace tessera {

class Model {
 public:
  Model(const ModelConfig& cfg, ModelWeights weights, Backend& backend, Comm& comm);

  const ModelConfig& config() const { return cfg_; }
  const ModelWeights& weights() const { return w_; }
  Backend& backend() { return backend_; }
  // The KV cache shape this rank needs for `num_blocks` blocks.
  KvCacheShape kv_shape(int64_t num_blocks, int64_t block_size) const;

  // Runs the batch and returns F32 logits [batch.num_logits(), vocab_size] on the host.
  // Token ids must be inside the vocabulary (checked); K/V of the batch's tokens are written
  // to `kv` at their slots.
  std::vector<float> forward(const Batch& batch, KvCache& kv);

 private:
  // Named intermediate tensors, reused across steps (grown when a step needs more).
  enum Slot { kResidual, kNormed, kQ, kK, kV, kAttn, kProj, kGate, kUp, kAct, kLast, kLogits };
  Tensor buf(Slot slot, DType dtype, std::initializer_list<int64_t> dims);

  // out = x @ w^T, all-reduced when w is a row-split shard (partial sums).
  void project(const Tensor& x, const LinearWeight& w, Tensor& out);
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
  std::map<Slot, Tensor> workspace_;
};

}  // namespace tessera

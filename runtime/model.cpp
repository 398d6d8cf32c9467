#include "runtime/model.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "kernels/rope.h"
#include "parallel/shard_rules.h"
#include "runtime/error.h"

namespace tessera {
namespace {

// Generations are unique in the process, so a graph captured for one Model (or for a
// workspace since reallocated) can never match another's key, even at a reused address.
uint64_t next_generation() {
  static std::atomic<uint64_t> next{1};
  return next.fetch_add(1);
}

// Sets a flag for a scope (also when the scope is left by an exception).
struct FlagScope {
  bool& flag;
  explicit FlagScope(bool& f) : flag(f) { flag = true; }
  ~FlagScope() { flag = false; }
};

// The float KV cache dtype the backend's kernels read: F32 on the CPU, else the compute dtype.
DType plain_kv_dtype(const Backend& b) {
  return b.device() == Device::CPU ? DType::F32 : b.compute_dtype();
}

}  // namespace

Model::Model(const ModelConfig& cfg, ModelWeights weights, Backend& backend, Comm& comm)
    : cfg_(cfg),
      w_(std::move(weights)),
      backend_(backend),
      comm_(comm),
      generation_(next_generation()) {
  const LocalDims d = local_dims(cfg_, comm_.world());
  heads_local_ = d.num_heads;
  kv_heads_local_ = d.num_kv_heads;
  inter_local_ = d.intermediate;
  rope_.inv_freq = rope_inv_freq(cfg_);
  backend_.prepare_rope(rope_);
  attn_.num_heads = heads_local_;
  attn_.num_kv_heads = kv_heads_local_;
  attn_.head_dim = cfg_.head_dim;
  attn_.scale = float(1.0 / std::sqrt(double(cfg_.head_dim)));
  attn_.sliding_window = cfg_.sliding_window;
  kv_dtype_ = plain_kv_dtype(backend_);
  for (const LayerWeights& lw : w_.layers)
    for (const LinearWeight* l : {&lw.q, &lw.k, &lw.v, &lw.o, &lw.gate, &lw.up, &lw.down})
      if (!l->input_perm.empty()) permuted_width_ = std::max(permuted_width_, l->in_features());
}

void Model::set_kv_dtype(DType dtype) {
  const DType plain = plain_kv_dtype(backend_);
  if (dtype != plain && dtype != DType::I8)
    throw std::invalid_argument(std::string("KV cache dtype ") + dtype_name(dtype) + " on " +
                                backend_.name() + ": only " + dtype_name(plain) + " or I8");
  kv_dtype_ = dtype;
}

KvCacheShape Model::kv_shape(int64_t num_blocks, int64_t block_size) const {
  KvCacheShape s;
  s.num_layers = cfg_.num_layers;
  s.num_blocks = num_blocks;
  s.kv_heads = kv_heads_local_;
  s.block_size = block_size;
  s.head_dim = cfg_.head_dim;
  s.dtype = kv_dtype_;
  return s;
}

Tensor Model::buf(Slot slot, DType dtype, std::initializer_list<int64_t> dims) {
  Tensor want = make_tensor_view(nullptr, dtype, dims);
  Tensor& have = workspace_[slot];
  if (have.empty() || have.nbytes() < want.nbytes() || have.dtype != dtype) {
    // A captured step must not allocate: reserve_workspace sizes every slot beforehand.
    if (in_step_)
      throw std::logic_error("Model: workspace slot " + std::to_string(int(slot)) +
                             " grew inside a step (missing from reserve_workspace)");
    have = Tensor{};  // the old buffer goes first: no moment holds both (the plan counts one)
    have = backend_.alloc(dtype, {want.numel()});
    generation_ = next_generation();  // graphs holding the old buffer are stale
  }
  want.data = have.data;
  want.storage = have.storage;
  want.device = have.device;
  return want;
}

void Model::set_activation_observer(ActivationObserver observer) {
  require(!observer || (backend_.device() == Device::CPU &&
                        backend_.compute_dtype() == DType::F32),
          "activation calibration runs on the CPU backend (--device cpu)");
  observer_ = std::move(observer);
}

void Model::observe(const LayerWeights& lw, LinearInput site, const Tensor& x) {
  if (observer_) observer_(int64_t(&lw - w_.layers.data()), site, x);
}

void Model::project(const Tensor& x, const LinearWeight& w, Tensor& out) {
  if (w.input_perm.empty()) {
    backend_.linear(x, w, out);
  } else {
    // GPTQ act-order: the packed inputs are in quantization order (runtime/prequantized.h).
    Tensor xp = buf(kPermuted, x.dtype, {x.dim(0), w.in_features()});
    backend_.gather_columns(x, w.input_perm, xp);
    backend_.linear(xp, w, out);
  }
  if (w.partial_sum) comm_.all_reduce_sum(out);
}

Tensor Model::attention_block(const LayerWeights& lw, KvLayer& cache, const Tensor& h,
                              const BatchTensors& bt, int64_t block_size) {
  const int64_t n = h.dim(0), d = cfg_.head_dim;
  const DType ct = backend_.compute_dtype();
  Tensor q = buf(kQ, ct, {n, heads_local_ * d});
  Tensor k = buf(kK, ct, {n, kv_heads_local_ * d});
  Tensor v = buf(kV, ct, {n, kv_heads_local_ * d});
  observe(lw, LinearInput::kAttention, h);
  project(h, lw.q, q);
  project(h, lw.k, k);
  project(h, lw.v, v);
  Tensor q3 = q.reshaped({n, heads_local_, d});
  Tensor k3 = k.reshaped({n, kv_heads_local_, d});
  Tensor v3 = v.reshaped({n, kv_heads_local_, d});
  backend_.rope(q3, k3, rope_, bt);
  backend_.kv_write(k3, v3, cache, block_size, bt);
  Tensor attn = buf(kAttn, ct, {n, heads_local_ * d});
  backend_.attention(q3, cache, block_size, attn_, bt, attn);
  Tensor out = buf(kProj, DType::F32, {n, cfg_.hidden_size});  // see reserve_workspace
  observe(lw, LinearInput::kAttentionOut, attn);
  project(attn, lw.o, out);
  return out;
}

Tensor Model::mlp_block(const LayerWeights& lw, const Tensor& h, int64_t n) {
  const DType ct = backend_.compute_dtype();
  Tensor gate = buf(kGate, ct, {n, inter_local_});
  Tensor up = buf(kUp, ct, {n, inter_local_});
  observe(lw, LinearInput::kMlp, h);
  project(h, lw.gate, gate);
  project(h, lw.up, up);
  Tensor act = buf(kAct, ct, {n, inter_local_});
  backend_.silu_mul(gate, up, act);
  Tensor out = buf(kProj, DType::F32, {n, cfg_.hidden_size});
  observe(lw, LinearInput::kMlpAct, act);
  project(act, lw.down, out);
  return out;
}

void Model::reserve_workspace(int64_t n, int64_t nl) {
  const DType ct = backend_.compute_dtype();
  const int64_t H = cfg_.hidden_size, d = cfg_.head_dim;
  buf(kResidual, DType::F32, {n, H});
  buf(kNormed, ct, {n, H});
  buf(kQ, ct, {n, heads_local_ * d});
  buf(kK, ct, {n, kv_heads_local_ * d});
  buf(kV, ct, {n, kv_heads_local_ * d});
  buf(kAttn, ct, {n, heads_local_ * d});
  // What o_proj and down_proj add to the residual stream is F32, like the stream: models
  // trained in bf16 grow "massive activations" (a few channels, out of one layer's down_proj)
  // that come near or past fp16's 65504 in the Qwen2 family (down_proj outputs of ~50k in
  // Qwen2-57B, overflowing channels in Qwen2.5-72B; fp16 Qwen2.5 then prints "!!!!" in other
  // engines). An F16 buffer here would turn them into Inf, then every logit into NaN.
  buf(kProj, DType::F32, {n, H});
  buf(kGate, ct, {n, inter_local_});
  buf(kUp, ct, {n, inter_local_});
  buf(kAct, ct, {n, inter_local_});
  if (permuted_width_ > 0) buf(kPermuted, ct, {n, permuted_width_});
  if (nl == 0) return;
  buf(kLast, ct, {nl, H});
  buf(kLogits, DType::F32, {nl, w_.lm_head.out_features()});
}

// Collectives (tp > 1: MPI today) cannot be captured; prefill steps are long enough that
// launch overhead does not matter. (With NCCL, tp > 1 decode could be captured too.)
bool Model::graph_step(const Batch& batch) const {
  return comm_.world().size == 1 && batch.num_tokens() == batch.num_seqs() &&
         batch.num_tokens() <= kMaxGraphTokens;
}

// What the device step's launches depend on beyond the constant weights and the backend's
// own batch layout: the workspace (generation), shapes, and every KV layer's storage.
StepKey Model::step_key(const Batch& batch, KvCache& kv) const {
  StepKey key;
  const KvCacheShape& ks = kv.shape();
  key.words = {int64_t(generation_), batch.num_tokens(), batch.num_seqs(), batch.num_logits(),
               ks.block_size,       ks.num_blocks,      int64_t(ks.dtype)};
  for (int64_t l = 0; l < ks.num_layers; ++l) {
    const KvLayer& layer = kv.layer(l);
    for (const Tensor* t : {&layer.k, &layer.v, &layer.k_scale, &layer.v_scale})
      key.words.push_back(int64_t(reinterpret_cast<uintptr_t>(t->data)));  // scales: I8 only
  }
  return key;
}

void Model::device_step(const BatchTensors& bt, KvCache& kv, int64_t nl, Tensor local) {
  const FlagScope in_step(in_step_);
  const int64_t n = bt.host->num_tokens(), H = cfg_.hidden_size;
  const int64_t block_size = kv.shape().block_size;
  const DType ct = backend_.compute_dtype();
  Tensor residual = buf(kResidual, DType::F32, {n, H});  // the residual stream stays F32
  backend_.embedding(w_.embed, w_.vocab_begin, bt, residual);
  if (comm_.world().size > 1) comm_.all_reduce_sum(residual);  // vocab-split table
  Tensor h = buf(kNormed, ct, {n, H});
  backend_.rmsnorm(residual, w_.layers[0].input_norm, cfg_.rms_norm_eps, h);

  for (size_t l = 0; l < w_.layers.size(); ++l) {
    const LayerWeights& lw = w_.layers[l];
    Tensor attn = attention_block(lw, kv.layer(int64_t(l)), h, bt, block_size);
    backend_.add_rmsnorm(residual, attn, lw.post_attention_norm, cfg_.rms_norm_eps, h);
    Tensor mlp = mlp_block(lw, h, n);
    const Tensor& next_norm =
        l + 1 < w_.layers.size() ? w_.layers[l + 1].input_norm : w_.final_norm;
    backend_.add_rmsnorm(residual, mlp, next_norm, cfg_.rms_norm_eps, h);
  }
  if (nl == 0) return;
  Tensor last = buf(kLast, ct, {nl, H});
  backend_.gather_rows(h, bt.logit_indices, last);
  backend_.linear(last, w_.lm_head, local);
}

std::vector<float> Model::forward(const Batch& batch, KvCache& kv) {
  const int64_t n = batch.num_tokens();
  if (n == 0) throw std::invalid_argument("forward: empty batch");
  for (int32_t id : batch.token_ids)
    require(id >= 0 && id < cfg_.vocab_size,
            "token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                std::to_string(cfg_.vocab_size) + ")");
  for (int32_t p : batch.positions)
    require(p >= 0 && p < cfg_.max_position_embeddings,
            "position " + std::to_string(p) + " is beyond max_position_embeddings (" +
                std::to_string(cfg_.max_position_embeddings) + ")");
  const int64_t block_size = kv.shape().block_size;
  validate_batch(batch, kv.num_slots(), block_size);
  const BatchTensors bt = backend_.upload_batch(batch);
  const int64_t nl = batch.num_logits(), vocab_local = w_.lm_head.out_features();
  reserve_workspace(n, nl);
  const Tensor local = nl > 0 ? buf(kLogits, DType::F32, {nl, vocab_local}) : Tensor{};
  const auto step = [&] { device_step(bt, kv, nl, local); };
  if (graph_step(batch) && !observer_)
    backend_.run_captured(step_key(batch, kv), step);
  else
    step();

  std::vector<float> logits(size_t(nl * cfg_.vocab_size));
  if (nl == 0) return logits;
  if (comm_.world().size == 1) {
    backend_.download(local, logits.data());
    return logits;
  }
  // Vocab-parallel lm_head: rank r holds vocab [r * per, (r + 1) * per) (the last rank
  // fewer). Pad every rank's block to per columns, gather, and lay the blocks side by side.
  const int64_t tp = comm_.world().size, V = cfg_.vocab_size, per = (V + tp - 1) / tp;
  std::vector<float> mine(size_t(nl * vocab_local));
  backend_.download(local, mine.data());
  Tensor padded = host_tensor(DType::F32, {nl, per});
  for (int64_t i = 0; i < nl; ++i) {
    std::copy_n(mine.data() + i * vocab_local, vocab_local, padded.ptr<float>() + i * per);
    std::fill_n(padded.ptr<float>() + i * per + vocab_local, per - vocab_local, 0.0f);
  }
  Tensor all = host_tensor(DType::F32, {tp, nl, per});
  comm_.all_gather(padded, all);
  for (int64_t r = 0; r < tp; ++r) {
    const int64_t cols = std::min(per, V - r * per);
    for (int64_t i = 0; i < nl; ++i)
      std::copy_n(all.ptr<float>() + (r * nl + i) * per, cols, logits.data() + i * V + r * per);
  }
  return logits;
}

}  // namespace tessera

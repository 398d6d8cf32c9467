// ModelWeights: one rank's share of a model's parameters, on the backend, loaded from a
// TensorSource (a Hugging Face checkpoint, or random weights of the real shapes) through the
// shard rules. Linear weights keep the stored dtype or are quantized at load (--weights);
// norms and biases become F32.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "parallel/world.h"
#include "runtime/backend.h"
#include "runtime/model_config.h"

namespace tessera {

struct LayerWeights {
  Tensor input_norm;                 // F32 [hidden]
  Tensor post_attention_norm;        // F32 [hidden]
  LinearWeight q, k, v;              // [heads_local * head_dim, hidden], [kv_local * head_dim, hidden] x2
  LinearWeight o;                    // [hidden, heads_local * head_dim]   (row split)
  LinearWeight gate, up;             // [inter_local, hidden]
  LinearWeight down;                 // [hidden, inter_local]               (row split)
};

struct ModelWeights {
  Tensor embed;                      // [vocab_local, hidden], stored dtype
  int64_t vocab_begin = 0;           // first vocab id of this rank's embed / lm_head rows
  std::vector<LayerWeights> layers;
  Tensor final_norm;                 // F32 [hidden]
  LinearWeight lm_head;              // [vocab_local, hidden] (tied: the embedding table)
  uint64_t bytes = 0;                // weight bytes held by this rank (quantized: packed
                                     // weights + scales + zeros)
};

// Where tensors come from. Names are Hugging Face's.
class TensorSource {
 public:
  virtual ~TensorSource() = default;
  virtual bool has(const std::string& name) const = 0;
  virtual std::vector<int64_t> shape(const std::string& name) const = 0;
  // Rows [r0, r1) of dim 0 (a 1-D tensor: elements), as a host tensor.
  virtual Tensor rows(const std::string& name, int64_t r0, int64_t r1) = 0;
  // Columns [c0, c1) of a 2-D tensor, as a host tensor.
  virtual Tensor cols(const std::string& name, int64_t c0, int64_t c1) = 0;
  // "tensor NAME in FILE", for error messages.
  virtual std::string describe(const std::string& name) const = 0;
};

// "[3584, 18944]", for error messages.
std::string shape_string(const std::vector<int64_t>& shape);

// A Hugging Face checkpoint directory (model.safetensors or a sharded index).
std::unique_ptr<TensorSource> open_checkpoint_source(const std::string& model_dir);
// Deterministic random weights of cfg's shapes in `dtype` (benchmarks: --load-format dummy).
std::unique_ptr<TensorSource> make_dummy_source(const ModelConfig& cfg, DType dtype,
                                                uint64_t seed);

// Where the embedding table lives (--embeddings): on the backend's device, or in host memory
// that its kernels read (Backend::upload_host_resident: on a GPU pinned memory read over
// PCIe, one row per token, freeing vocab_local x hidden x 2 bytes of the card). A tied
// model's lm_head is that table, read whole every step, so Host needs --lm-head int8 (a copy
// on the device) there.
enum class EmbeddingPlacement : uint8_t { Device, Host };

// Loads this rank's shard, the *_proj weights (q, k, v, o, gate, up, down) as stored or
// quantized to `proj_format` (each rank quantizes its own slice; runtime/quant.h); embeddings
// stay as stored, lm_head too or, with `lm_head_format` Int8, per-row int8 (a tied model then
// holds that int8 copy beside its table), the table where `embeddings` says. Throws UserError
// naming the tensor on a missing tensor, a shape or a dtype mismatch, and for a tied model
// with Host embeddings and a stored lm_head.
ModelWeights load_model_weights(TensorSource& src, const ModelConfig& cfg, Backend& backend,
                                const World& world,
                                WeightFormat proj_format = WeightFormat::Dense,
                                WeightFormat lm_head_format = WeightFormat::Dense,
                                EmbeddingPlacement embeddings = EmbeddingPlacement::Device);

}  // namespace tessera

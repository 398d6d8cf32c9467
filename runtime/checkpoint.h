// Checkpoint: the tensors of a Hugging Face model directory, from a single model.safetensors
// or from the shards named by model.safetensors.index.json ({"weight_map": {tensor: file}}).
// Every file is mapped and validated at open; a tensor is read from whichever file holds it.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "runtime/safetensors.h"
#include "runtime/tensor.h"

namespace tessera {

class Checkpoint {
 public:
  // model.safetensors when present (as transformers does), else the sharded index. Any
  // problem (no weights, bad index, a shard missing or invalid, a tensor in two shards) is a
  // UserError naming the directory or file.
  static Checkpoint open(const std::string& model_dir);

  const std::string& dir() const { return dir_; }
  bool has(const std::string& name) const { return where_.count(name) != 0; }
  // UserError "tensor X not found in <dir>" when missing.
  const TensorInfo& info(const std::string& name) const;
  std::vector<std::string> names() const;  // sorted

  // Forward to the file holding the tensor; see SafetensorsFile for the semantics.
  Tensor view(const std::string& name) const;
  Tensor view_rows(const std::string& name, int64_t r0, int64_t r1) const;
  Tensor read_rows(const std::string& name, int64_t r0, int64_t r1) const;
  Tensor read_cols(const std::string& name, int64_t c0, int64_t c1) const;

  // The union of the files' __metadata__ maps (on a conflicting key the first shard wins).
  // E.g. a tied model may map "model.embed_tokens.weight" -> "lm_head.weight".
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  uint64_t bytes_read() const;  // summed over the files
  const std::vector<std::shared_ptr<SafetensorsFile>>& files() const { return files_; }
  const SafetensorsFile& file_of(const std::string& name) const;

 private:
  void add_file(const std::string& path);

  std::string dir_;
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, size_t> where_;  // tensor name -> index into files_
  std::map<std::string, std::string> metadata_;
};

}  // namespace tessera

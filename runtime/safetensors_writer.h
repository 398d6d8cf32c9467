// Writes a .safetensors file (layout in runtime/safetensors.h): the header's tensors in the
// order given, data back to back, the header padded with spaces to a multiple of 8 bytes
// (as the reference implementation does, so data stays aligned). The file is written under a
// temporary name and renamed at the end, so a failed write never leaves a partial file.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "runtime/tensor.h"

namespace tessera {

struct NamedTensor {
  std::string name;
  Tensor tensor;  // host, contiguous
};

// UserError naming the file when it cannot be written, or on a duplicate tensor name.
void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace tessera

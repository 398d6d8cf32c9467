#include "runtime/safetensors_writer.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "runtime/error.h"

namespace tessera {

void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::set<std::string> seen;
  uint64_t offset = 0;
  for (const NamedTensor& nt : tensors) {
    require(seen.insert(nt.name).second, path + ": tensor " + nt.name + " given twice");
    require(nt.tensor.device == Device::CPU, path + ": tensor " + nt.name + " is not on the host");
    std::vector<int64_t> shape(nt.tensor.shape.begin(), nt.tensor.shape.begin() + nt.tensor.ndim);
    const uint64_t n = nt.tensor.nbytes();
    header[nt.name] = {{"dtype", dtype_name(nt.tensor.dtype)},
                       {"shape", shape},
                       {"data_offsets", {offset, offset + n}}};
    offset += n;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  const std::string tmp = path + ".partial";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    require(bool(f), "cannot write " + path);
    char len[8];
    for (int i = 0; i < 8; ++i) len[i] = char((uint64_t(text.size()) >> (8 * i)) & 0xff);
    f.write(len, 8);
    f.write(text.data(), std::streamsize(text.size()));
    for (const NamedTensor& nt : tensors)
      f.write(static_cast<const char*>(nt.tensor.data), std::streamsize(nt.tensor.nbytes()));
    f.flush();
    if (!f) {
      std::remove(tmp.c_str());
      throw UserError("cannot write " + path + " (disk full?)");
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  require(!ec, "cannot write " + path + ": " + ec.message());
}

}  // namespace tessera

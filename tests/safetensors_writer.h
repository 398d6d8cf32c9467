// Test helper: crafts .safetensors files (well-formed or deliberately broken) for the loader
// tests. Header-only; written from the format description, not from any library.
#pragma once
#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "runtime/dtype.h"

namespace tessera::test {

// One tensor to write: the dtype as the header spells it, the shape, the raw bytes.
struct StTensor {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  std::string bytes;
};

template <class T>
std::string as_bytes(const std::vector<T>& v) {
  std::string s(v.size() * sizeof(T), '\0');
  if (!v.empty()) std::memcpy(s.data(), v.data(), s.size());
  return s;
}

inline std::string f16_bytes(const std::vector<float>& v) {
  std::vector<uint16_t> h;
  for (float x : v) h.push_back(f32_to_f16(x));
  return as_bytes(h);
}

inline std::string bf16_bytes(const std::vector<float>& v) {
  std::vector<uint16_t> h;
  for (float x : v) h.push_back(f32_to_bf16(x));
  return as_bytes(h);
}

// Writes the 8-byte little-endian length (of `header`, or `declared_len` when given), the
// header text verbatim, then `data`.
inline void write_raw_safetensors(const std::string& path, const std::string& header,
                                  const std::string& data,
                                  std::optional<uint64_t> declared_len = std::nullopt) {
  uint64_t n = declared_len ? *declared_len : header.size();
  char len[8];
  for (int i = 0; i < 8; ++i) len[i] = char((n >> (8 * i)) & 0xff);
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(len, 8);
  f.write(header.data(), std::streamsize(header.size()));
  f.write(data.data(), std::streamsize(data.size()));
  if (!f) throw std::runtime_error("cannot write " + path);
}

// A well-formed file: tensors packed back to back in the given order, the header padded with
// spaces so the data area starts 8-aligned (as real writers do) unless pad is false.
inline void write_safetensors(const std::string& path, const std::vector<StTensor>& tensors,
                              const std::map<std::string, std::string>& metadata = {},
                              bool pad = true) {
  nlohmann::json h = nlohmann::json::object();
  if (!metadata.empty()) h["__metadata__"] = metadata;
  std::string data;
  for (const auto& t : tensors) {
    h[t.name] = {{"dtype", t.dtype},
                 {"shape", t.shape},
                 {"data_offsets", {data.size(), data.size() + t.bytes.size()}}};
    data += t.bytes;
  }
  std::string header = h.dump();
  while (pad && (8 + header.size()) % 8 != 0) header += ' ';
  write_raw_safetensors(path, header, data);
}

}  // namespace tessera::test

// SafetensorsFile: one memory-mapped .safetensors file, validated in full when opened.
//
// Layout: u64 little-endian header length N, N bytes of JSON, then the data area. The JSON maps
// tensor name -> {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the data
// area), plus an optional "__metadata__" string -> string map.
//
// Reads are page-exact: the mapping is advised MADV_RANDOM (no kernel read-around, which can be
// megabytes per fault), and every view/read first asks the kernel to fetch exactly the pages it
// needs (MADV_WILLNEED). A rank that takes a slice of a tensor therefore reads that slice's pages
// and no others; `resident_pages()` (mincore) lets tests check it.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "runtime/dtype.h"
#include "runtime/tensor.h"

namespace tessera {

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;  // may be empty (a scalar) or hold zeros
  uint64_t begin = 0, end = 0;  // byte range in the data area: [begin, end)

  uint64_t nbytes() const { return end - begin; }
  std::string shape_str() const;
};

class SafetensorsFile : public std::enable_shared_from_this<SafetensorsFile> {
 public:
  // Opens, maps and validates `path`; any problem is a UserError naming the file (and tensor).
  static std::shared_ptr<SafetensorsFile> open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find(const std::string& name) const;
  // Like find, but a missing tensor is a UserError naming it and the file.
  const TensorInfo& info(const std::string& name) const;

  // The whole tensor, zero-copy and read-only: the Tensor's storage keeps this file mapped.
  // A scalar (shape []) comes back as shape [1]. Rank above 4 is a UserError. If the data is
  // not aligned to its element size (a header not padded to 8 bytes), the view is an aligned
  // copy instead, so that typed access through Tensor::ptr<T>() stays well-defined.
  Tensor view(const std::string& name) const;
  // Rows [r0, r1) along dim 0 (contiguous in row-major order), zero-copy as view().
  Tensor view_rows(const std::string& name, int64_t r0, int64_t r1) const;
  // Copying variants: new host tensors. read_cols takes a 2-D [R, C] tensor's columns
  // [c0, c1) into a [R, c1 - c0] tensor, one memcpy per row, touching no other bytes.
  Tensor read_rows(const std::string& name, int64_t r0, int64_t r1) const;
  Tensor read_cols(const std::string& name, int64_t c0, int64_t c1) const;

  // Bytes handed out so far by view/view_rows/read_rows/read_cols (exposed or copied).
  uint64_t bytes_read() const { return bytes_read_.load(std::memory_order_relaxed); }

  uint64_t file_size() const { return size_; }
  uint64_t data_start() const { return data_start_; }  // file offset of the data area: 8 + N
  // Per page of the file: is it in the page cache (mincore)? For tests of what a read touched.
  std::vector<bool> resident_pages() const;
  size_t resident_bytes() const;

 private:
  SafetensorsFile() = default;
  void map_file();
  void parse_header();
  void check_entry(const std::string& name, const nlohmann::json& entry);
  [[noreturn]] void fail(const std::string& what) const;
  const char* data_at(uint64_t off) const { return base_ + data_start_ + off; }
  // Starts the kernel reading the pages of data-area bytes [off, off + len).
  void prefetch(uint64_t off, uint64_t len) const;
  void prefetch_file(uint64_t a, uint64_t b) const;  // file offsets [a, b)
  void release_file(uint64_t a, uint64_t b) const;   // drops [a, b)'s pages from this mapping
  Tensor slice_view(const TensorInfo& t, uint64_t off, uint64_t len, int64_t rows) const;
  uint64_t row_bytes(const TensorInfo& t) const;
  void check_rows(const TensorInfo& t, int64_t r0, int64_t r1) const;

  std::string path_;
  const char* base_ = nullptr;  // the whole file, PROT_READ
  uint64_t size_ = 0;
  uint64_t data_start_ = 0;
  std::map<std::string, std::string> metadata_;
  std::map<std::string, TensorInfo> tensors_;
  mutable std::atomic<uint64_t> bytes_read_{0};
};

}  // namespace tessera

#include "runtime/checkpoint.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "runtime/error.h"

namespace tessera {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr const char* kSingle = "model.safetensors";
constexpr const char* kIndex = "model.safetensors.index.json";

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw UserError("cannot read " + path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// A shard name from the index must stay inside the model directory.
bool safe_relative(const std::string& name) {
  fs::path p(name);
  if (name.empty() || p.is_absolute()) return false;
  for (const auto& part : p)
    if (part == "..") return false;
  return true;
}

}  // namespace

Checkpoint Checkpoint::open(const std::string& model_dir) {
  Checkpoint ck;
  ck.dir_ = model_dir;
  std::error_code ec;
  if (!fs::is_directory(model_dir, ec))
    throw UserError("model directory " + model_dir + " does not exist or is not a directory");
  const fs::path dir(model_dir);
  const std::string single = (dir / kSingle).string(), index = (dir / kIndex).string();

  if (fs::exists(single, ec)) {
    ck.add_file(single);
    return ck;
  }
  if (!fs::exists(index, ec))
    throw UserError("no " + std::string(kSingle) + " or " + kIndex + " in " + model_dir);

  json j;
  try {
    j = json::parse(read_text(index));
  } catch (const json::exception& e) {
    throw UserError(index + ": not valid JSON: " + e.what());
  }
  if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
    throw UserError(index + ": no \"weight_map\" object");
  const json& wm = j["weight_map"];

  std::map<std::string, size_t> file_index;  // shard name -> index into files_
  for (const auto& [tensor, file] : wm.items()) {
    if (!file.is_string())
      throw UserError(index + ": weight_map entry for '" + tensor + "' is not a file name");
    const std::string name = file.get<std::string>();
    if (file_index.count(name)) continue;
    if (!safe_relative(name))
      throw UserError(index + ": shard file name '" + name + "' (for tensor '" + tensor +
                      "') must be a relative path inside the model directory");
    const std::string path = (dir / name).string();
    if (!fs::is_regular_file(path, ec))
      throw UserError(index + " maps tensor '" + tensor + "' to " + path +
                      ", which does not exist");
    file_index[name] = ck.files_.size();
    ck.add_file(path);
  }
  for (const auto& [tensor, file] : wm.items()) {
    const SafetensorsFile& f = *ck.files_[file_index.at(file.get<std::string>())];
    if (!f.find(tensor))
      throw UserError(index + " maps tensor '" + tensor + "' to " + f.path() +
                      ", which has no such tensor");
  }
  return ck;
}

// Maps one file and records its tensors; a name already held by another file is an error.
void Checkpoint::add_file(const std::string& path) {
  auto f = SafetensorsFile::open(path);
  const size_t idx = files_.size();
  for (const auto& [name, t] : f->tensors()) {
    auto [it, inserted] = where_.emplace(name, idx);
    if (!inserted)
      throw UserError("tensor '" + name + "' appears in both " + files_[it->second]->path() +
                      " and " + path);
  }
  for (const auto& [k, v] : f->metadata()) metadata_.emplace(k, v);
  files_.push_back(std::move(f));
}

const SafetensorsFile& Checkpoint::file_of(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) throw UserError("tensor " + name + " not found in " + dir_);
  return *files_[it->second];
}

const TensorInfo& Checkpoint::info(const std::string& name) const {
  return file_of(name).info(name);
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  out.reserve(where_.size());
  for (const auto& [name, idx] : where_) out.push_back(name);
  return out;
}

Tensor Checkpoint::view(const std::string& name) const { return file_of(name).view(name); }

Tensor Checkpoint::view_rows(const std::string& name, int64_t r0, int64_t r1) const {
  return file_of(name).view_rows(name, r0, r1);
}

Tensor Checkpoint::read_rows(const std::string& name, int64_t r0, int64_t r1) const {
  return file_of(name).read_rows(name, r0, r1);
}

Tensor Checkpoint::read_cols(const std::string& name, int64_t c0, int64_t c1) const {
  return file_of(name).read_cols(name, c0, c1);
}

uint64_t Checkpoint::bytes_read() const {
  uint64_t n = 0;
  for (const auto& f : files_) n += f->bytes_read();
  return n;
}

}  // namespace tessera

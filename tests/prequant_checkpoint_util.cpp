#include "tests/prequant_checkpoint_util.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "runtime/checkpoint.h"
#include "tests/prequant_pack.h"
#include "tests/safetensors_writer.h"
#include "tests/test_util.h"

namespace tessera::test {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

bool is_proj(const std::string& n) {
  return n.find("_proj.weight") != std::string::npos && n.rfind("model.layers.", 0) == 0;
}

// RTN of one [out, in] F32 weight over the groups of g_idx (min/max per group and row, fp16
// scale, z clamped to [z_lo, 15]); returns the known contents.
KnownInt4 quantize_known(const float* w, int64_t out, int64_t in, int64_t group,
                         const std::vector<int32_t>& g_idx, int z_lo) {
  KnownInt4 k;
  k.out = out, k.in = in, k.groups = (in + group - 1) / group, k.g_idx = g_idx;
  k.q.resize(size_t(out * in));
  k.z.resize(size_t(k.groups * out));
  k.s.resize(size_t(k.groups * out));
  for (int64_t o = 0; o < out; ++o)
    for (int64_t g = 0; g < k.groups; ++g) {
      float mn = 0, mx = 0;
      for (int64_t i = 0; i < in; ++i)
        if (g_idx[size_t(i)] == g) mn = std::min(mn, w[o * in + i]), mx = std::max(mx, w[o * in + i]);
      const float s = f16_to_f32(f32_to_f16(std::max((mx - mn) / 15.0f, 1e-6f)));
      const int z = std::clamp(int(std::nearbyint(-mn / s)), z_lo, 15);
      k.s[size_t(g * out + o)] = s, k.z[size_t(g * out + o)] = z;
      for (int64_t i = 0; i < in; ++i)
        if (g_idx[size_t(i)] == g)
          k.q[size_t(o * in + i)] =
              uint8_t(std::clamp(int(std::nearbyint(w[o * in + i] / s)) + z, 0, 15));
    }
  return k;
}

StTensor st(const std::string& name, const Tensor& t) {
  std::string bytes(static_cast<const char*>(t.data), t.nbytes());
  return {name, dtype_name(t.dtype), std::vector<int64_t>(t.shape.begin(), t.shape.begin() + t.ndim),
          bytes};
}

}  // namespace

void write_prequant_checkpoints(const fs::path& dir, const std::string& format, int64_t group,
                                bool act_order, const NotConverted& nc) {
  const std::string src_dir = testdata_dir() + "/models/TinyStories-656K";
  const Checkpoint ck = Checkpoint::open(src_dir);
  std::vector<StTensor> quant, dense;
  std::mt19937 rng(11);
  for (const std::string& name : ck.names()) {
    const Tensor t = ck.read_rows(name, 0, ck.info(name).shape[0]);
    if (!is_proj(name)) {
      quant.push_back(st(name, t));
      dense.push_back(st(name, t));
      continue;
    }
    const int64_t out = t.dim(0), in = t.dim(1);
    std::vector<int32_t> gi;
    for (int64_t i = 0; i < in; ++i) gi.push_back(int32_t(i / group));
    if (act_order) std::shuffle(gi.begin(), gi.end(), rng);
    const KnownInt4 k = quantize_known(t.ptr<float>(), out, in, group, gi, format == "gptq");
    const std::string prefix = name.substr(0, name.size() - std::string(".weight").size());
    const StTensor known{name, "F32", {out, in}, as_bytes(k.dequantized())};
    if (std::find(nc.dense.begin(), nc.dense.end(), prefix) != nc.dense.end())
      quant.push_back(known);
    else
      for (const auto& [n, packed] : packed_layer(prefix, k, format)) quant.push_back(st(n, packed));
    dense.push_back(known);
  }
  json cfg = json::parse(std::ifstream(src_dir + "/config.json"));
  for (const char* sub : {"quant", "dense"}) fs::create_directories(dir / sub);
  write_safetensors((dir / "dense" / "model.safetensors").string(), dense);
  std::ofstream(dir / "dense" / "config.json") << cfg.dump(2);
  cfg["quantization_config"] =
      format == "awq"
          ? json{{"quant_method", "awq"}, {"bits", 4}, {"group_size", group},
                 {"zero_point", true}, {"version", "gemm"}}
          : json{{"quant_method", "gptq"}, {"bits", 4}, {"group_size", group},
                 {"desc_act", act_order}, {"sym", false}, {"checkpoint_format", format}};
  if (!nc.listed.empty()) cfg["quantization_config"]["modules_to_not_convert"] = nc.listed;
  for (const std::string& pattern : nc.excluded)
    cfg["quantization_config"]["dynamic"]["-:" + pattern] = json::object();
  write_safetensors((dir / "quant" / "model.safetensors").string(), quant);
  std::ofstream(dir / "quant" / "config.json") << cfg.dump(2);
}

}  // namespace tessera::test

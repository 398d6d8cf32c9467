// One rank's slice of an AWQ / GPTQ layer, read from the checkpoint with the fp16 twin's shard
// rule: a column split (q/k/v, gate/up) takes output columns of every tensor, a row split
// (o_proj, down_proj) takes input rows (formats in runtime/prequantized.h).
#include <string>
#include <vector>

#include "parallel/shard_rules.h"
#include "runtime/error.h"
#include "runtime/prequantized.h"
#include "runtime/weights.h"

namespace tessera {
namespace {

struct Slicer {
  TensorSource& src;
  bool row_split;
  Range outs, ins;  // this rank's output and input features

  void check_shape(const std::string& name, const std::vector<int64_t>& expected) {
    require(src.has(name), "missing " + src.describe(name) +
                               " (config.json's quantization_config says the layers are 4-bit)");
    const std::vector<int64_t> actual = src.shape(name);
    require(actual == expected, src.describe(name) + " has shape " + shape_string(actual) +
                                    ", expected " + shape_string(expected));
  }
  // Column split: columns [c0, c1) of every row. Row split: rows [r0, r1) of every column.
  Tensor take(const std::string& name, const std::vector<int64_t>& expected, int64_t c0,
              int64_t c1, int64_t r0, int64_t r1) {
    check_shape(name, expected);
    return row_split ? src.rows(name, r0, r1) : src.cols(name, c0, c1);
  }
};

}  // namespace

LinearWeight load_prequantized_linear(TensorSource& src, const std::string& prefix,
                                      int64_t out_f, int64_t in_f, const ModelConfig& cfg,
                                      const World& world) {
  const PrequantConfig& pq = cfg.prequant;
  require(pq.active(), src.describe(prefix + ".qweight") +
                           ": a 4-bit packed layer, but config.json has no quantization_config");
  const ShardRule rule = shard_rule_for(prefix + ".weight");
  Slicer s{src, rule.kind == SplitKind::Row, {0, out_f}, {0, in_f}};
  if (rule.kind == SplitKind::Column) s.outs = shard_range(rule, cfg, out_f, world);
  if (s.row_split) s.ins = shard_range(rule, cfg, in_f, world);
  const int64_t o0 = s.outs.begin, o1 = s.outs.end, i0 = s.ins.begin, i1 = s.ins.end;
  const std::string what = prefix + " (" + pq.name() + ")";
  require(out_f % 8 == 0 && o0 % 8 == 0 && o1 % 8 == 0,
          what + ": " + pq.name() + " packs 8 outputs per int32 word; this rank's outputs [" +
              std::to_string(o0) + ", " + std::to_string(o1) + ") of " + std::to_string(out_f) +
              " do not fall on word boundaries (try another --tp)");
  const int64_t g = pq.group_size > 0 ? pq.group_size : in_f;
  const int64_t groups = (in_f + g - 1) / g;
  const std::string p = prefix + ".";

  Int4Codes c;
  if (pq.method == PrequantConfig::Method::Awq) {
    require(in_f % g == 0, what + ": " + std::to_string(in_f) +
                               " input features are not a multiple of group_size " +
                               std::to_string(g));
    const int64_t g0 = i0 / g, g1 = (i1 + g - 1) / g;
    Tensor qw = s.take(p + "qweight", {in_f, out_f / 8}, o0 / 8, o1 / 8, i0, i1);
    Tensor qz = s.take(p + "qzeros", {groups, out_f / 8}, o0 / 8, o1 / 8, g0, g1);
    Tensor sc = s.take(p + "scales", {groups, out_f}, o0, o1, g0, g1);
    c = unpack_awq(qw, qz, sc, g, i0);
  } else {
    require(in_f % 8 == 0 && i0 % 8 == 0 && i1 % 8 == 0,
            what + ": GPTQ packs 8 inputs per int32 word; this rank's inputs [" +
                std::to_string(i0) + ", " + std::to_string(i1) + ") of " + std::to_string(in_f) +
                " do not fall on word boundaries (try another --tp)");
    Tensor qw = s.take(p + "qweight", {in_f / 8, out_f}, o0, o1, i0 / 8, i1 / 8);
    // A row split keeps every group: with act-order any input may use any of them.
    Tensor qz = s.take(p + "qzeros", {groups, out_f / 8}, o0 / 8, o1 / 8, 0, groups);
    Tensor sc = s.take(p + "scales", {groups, out_f}, o0, o1, 0, groups);
    Tensor gi;
    if (src.has(p + "g_idx")) {
      s.check_shape(p + "g_idx", {in_f});
      gi = src.rows(p + "g_idx", i0, i1);
    } else {
      require(!pq.desc_act, "missing " + src.describe(p + "g_idx") + " (desc_act is true)");
      gi = host_tensor(DType::I32, {i1 - i0});
      for (int64_t i = i0; i < i1; ++i) gi.ptr<int32_t>()[i - i0] = int32_t(i / g);
    }
    c = unpack_gptq(qw, qz, sc, gi, pq.zeros_minus_one, what);
  }
  // One group per row (group_size -1): tessera's group is the rank's whole slice.
  const int64_t fmt_group = pq.group_size > 0 ? pq.group_size : (c.in + 1) / 2 * 2;
  return int4_weight_from_codes(c, fmt_group);
}

}  // namespace tessera

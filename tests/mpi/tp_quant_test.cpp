// Quantized weights under tensor parallel (run under mpirun -np N with tp_equivalence_test):
// each rank quantizes its own slice, so the sharded int8 / int4 model must equal the
// unsharded model whose *_proj weights are exactly those slices' dequantized values laid
// side by side (logits within 1e-5 x max|logit|, same greedy ids). Per-row int8 scales and
// int4 groups of a row-split slice differ from the unsharded tensor's, so the reference is
// built from the slices rather than from quantizing the whole tensor.
#include <gtest/gtest.h>

#include <cmath>

#include "parallel/comm_mpi.h"
#include "parallel/shard_rules.h"
#include "runtime/error.h"
#include "runtime/quant.h"
#include "runtime/weights.h"
#include "tests/model_test_util.h"
#include "tests/test_util.h"

namespace tessera::test {
namespace {

Comm& comm() {
  static std::unique_ptr<Comm> c = make_mpi_comm();
  return *c;
}

bool is_proj_weight(const std::string& name) {
  return name.size() > 12 && name.compare(name.size() - 12, 12, "_proj.weight") == 0;
}

// `base`, except that every *_proj weight is what `tp` ranks hold after quantizing their
// slices to `format`, dequantized (F32) and assembled into the full tensor.
class SliceDequantizedSource final : public TensorSource {
 public:
  SliceDequantizedSource(TensorSource& base, const ModelConfig& cfg, WeightFormat format, int tp)
      : base_(base), cfg_(cfg), format_(format), tp_(tp) {}
  bool has(const std::string& n) const override { return base_.has(n); }
  std::vector<int64_t> shape(const std::string& n) const override { return base_.shape(n); }
  std::string describe(const std::string& n) const override { return base_.describe(n); }
  Tensor rows(const std::string& n, int64_t r0, int64_t r1) override {
    return is_proj_weight(n) ? assembled(n).rows(r0, r1) : base_.rows(n, r0, r1);
  }
  Tensor cols(const std::string& n, int64_t c0, int64_t c1) override {
    if (!is_proj_weight(n)) return base_.cols(n, c0, c1);
    const Tensor full = assembled(n);
    const int64_t rows = full.dim(0), in = full.dim(1);
    Tensor out = host_tensor(DType::F32, {rows, c1 - c0});
    for (int64_t r = 0; r < rows; ++r)
      std::copy_n(full.ptr<float>() + r * in + c0, c1 - c0, out.ptr<float>() + r * (c1 - c0));
    return out;
  }

 private:
  Tensor assembled(const std::string& name) {
    const std::vector<int64_t> s = base_.shape(name);
    const int64_t rows = s[0], in = s[1];
    Tensor full = host_tensor(DType::F32, {rows, in});
    const ShardRule rule = shard_rule_for(name);
    for (int r = 0; r < tp_; ++r) {
      World w;
      w.rank = r;
      w.size = tp_;
      if (rule.kind == SplitKind::Row) {
        const Range c = shard_range(rule, cfg_, in, w);
        const std::vector<float> d = dequantize_weight(
            quantize_weight(base_.cols(name, c.begin, c.end), format_));
        for (int64_t i = 0; i < rows; ++i)
          std::copy_n(d.data() + i * c.size(), c.size(), full.ptr<float>() + i * in + c.begin);
      } else {  // column split (replicated kv heads write the same rows twice)
        const Range rr = shard_range(rule, cfg_, rows, w);
        const std::vector<float> d = dequantize_weight(
            quantize_weight(base_.rows(name, rr.begin, rr.end), format_));
        std::copy(d.begin(), d.end(), full.ptr<float>() + rr.begin * in);
      }
    }
    return full;
  }

  TensorSource& base_;
  ModelConfig cfg_;
  WeightFormat format_;
  int tp_;
};

struct Loaded {
  std::unique_ptr<Backend> backend = make_cpu_backend(1);
  std::unique_ptr<Comm> single = make_single_comm();
  std::unique_ptr<Model> model;
};

class TpQuant : public ::testing::TestWithParam<std::tuple<const char*, WeightFormat>> {};

TEST_P(TpQuant, ShardedQuantizedEqualsUnshardedWithTheSlicesWeights) {
  TESSERA_REQUIRE_TESTDATA();
  const auto [name, format] = GetParam();
  const std::string dir = testdata_dir() + "/models/" + name;
  const int tp = comm().world().size;
  const ModelConfig cfg = load_model_config(dir);
  try {
    check_tp_compatible(cfg, tp);
  } catch (const UserError& e) {
    GTEST_SKIP() << "tp=" << tp << " does not divide this model: " << e.what();
  }
  auto src = open_checkpoint_source(dir);
  Loaded ref, sh;
  SliceDequantizedSource sliced(*src, cfg, format, tp);
  ref.model = std::make_unique<Model>(
      cfg, load_model_weights(sliced, cfg, *ref.backend, ref.single->world()), *ref.backend,
      *ref.single);
  sh.model = std::make_unique<Model>(
      cfg, load_model_weights(*src, cfg, *sh.backend, comm().world(), format), *sh.backend,
      comm());
  EXPECT_EQ(sh.model->weights().layers[0].down.format, format);
  const std::vector<int32_t> prompt = {1, 7, 100, 3, 250, 9, 42, 11, 5, 300, 17};
  const auto a = prefill_all_logits(*ref.model, prompt);
  const auto b = prefill_all_logits(*sh.model, prompt);
  ASSERT_EQ(a.size(), b.size());
  for (size_t p = 0; p < a.size(); ++p) {
    float worst = 0;
    for (size_t i = 0; i < a[p].size(); ++i) worst = std::max(worst, std::fabs(a[p][i] - b[p][i]));
    EXPECT_LE(worst, 1e-5f * max_abs(a[p])) << "rank " << comm().world().rank << " position " << p;
  }
  std::vector<int32_t> ida, idb;
  greedy_decode(*ref.model, prompt, 16, &ida);
  greedy_decode(*sh.model, prompt, 16, &idb);
  EXPECT_EQ(ida, idb);
}

// An int8 lm_head is split by vocab rows, and its per-row scales do not depend on the split:
// sharded, it gives the logits of the unsharded int8 lm_head.
TEST(TpQuantLmHead, Int8LmHeadShardedEqualsUnsharded) {
  TESSERA_REQUIRE_TESTDATA();
  int compared = 0;
  for (const char* name : {"TinyStories-656K", "tiny-llama"}) {  // tied, untied
    const std::string dir = testdata_dir() + "/models/" + name;
    const ModelConfig cfg = load_model_config(dir);
    try {
      check_tp_compatible(cfg, comm().world().size);
    } catch (const UserError& e) {
      continue;  // this tp does not divide the model
    }
    auto src = open_checkpoint_source(dir);
    Loaded ref, sh;
    ref.model = std::make_unique<Model>(
        cfg, load_model_weights(*src, cfg, *ref.backend, ref.single->world(),
                                WeightFormat::Dense, WeightFormat::Int8),
        *ref.backend, *ref.single);
    sh.model = std::make_unique<Model>(
        cfg, load_model_weights(*src, cfg, *sh.backend, comm().world(), WeightFormat::Dense,
                                WeightFormat::Int8),
        *sh.backend, comm());
    ASSERT_EQ(sh.model->weights().lm_head.format, WeightFormat::Int8);
    const std::vector<int32_t> prompt = {1, 7, 100, 3, 250, 9, 42, 11};
    const auto a = prefill_all_logits(*ref.model, prompt);
    const auto b = prefill_all_logits(*sh.model, prompt);
    ASSERT_EQ(a.size(), b.size());
    for (size_t p = 0; p < a.size(); ++p) {
      float worst = 0;
      for (size_t i = 0; i < a[p].size(); ++i)
        worst = std::max(worst, std::fabs(a[p][i] - b[p][i]));
      EXPECT_LE(worst, 1e-5f * max_abs(a[p])) << name << " position " << p;
    }
    ++compared;
  }
  if (compared == 0) GTEST_SKIP() << "tp=" << comm().world().size << " divides neither model";
}

INSTANTIATE_TEST_SUITE_P(
    Goldens, TpQuant,
    ::testing::Combine(::testing::Values("TinyStories-656K", "tiny-llama", "tiny-qwen2"),
                       ::testing::Values(WeightFormat::Int8, WeightFormat::Int4)),
    [](const auto& info) {
      std::string n = std::get<0>(info.param);
      for (char& c : n)
        if (!isalnum(static_cast<unsigned char>(c))) c = '_';
      return n + "_" + weight_format_name(std::get<1>(info.param));
    });

}  // namespace
}  // namespace tessera::test

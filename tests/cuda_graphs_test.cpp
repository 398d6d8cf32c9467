// Decode steps as CUDA graphs (Backend::run_captured): on a GPU, a scripted run with graphs
// on must equal the same run with graphs off token for token, logits within 1e-6 relative
// (same kernels), through block-boundary crossings, a block-table stride change, workspace
// growth and a batch-buffer reallocation. Without a GPU those tests skip visibly, and a CPU
// stand-in that records and replays each key's ops checks the model's side of the contract.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>

#include "kernels/sampling.h"
#include "runtime/sequence.h"
#include "runtime/weights.h"
#include "tests/cuda_test_util.h"
#include "tests/model_test_util.h"
#include "tests/test_util.h"

namespace tessera::test {
namespace {

constexpr int kFirstSteps = 40, kPairSteps = 2;

struct Trace {
  std::vector<int32_t> ids;                // every greedy pick, in order
  std::vector<std::vector<float>> logits;  // every step's logits [rows * vocab]
};

// (1) prefill A (5 tokens); (2) decode A 40 steps, blocks reserved step by step, so its table
// grows across block boundaries (widths 1, 2, 3); (3) prefill B (400 tokens): the workspace
// grows (stale graphs) and, on CUDA, the batch buffer is reallocated (graphs dropped);
// (4) decode A and B together 2 steps; (5) decode A alone `long_steps` more, starting at
// width 3 again (the key of step 2's graph but for the generation) and, past 128 tokens of
// context, at CUDA block-table stride 16 instead of 8 (a new graph).
Trace run_scenario(Model& m, int64_t long_steps) {
  const int64_t bs = 16, V = m.config().vocab_size;
  KvCache kv(m.backend(), m.kv_shape(64, bs));
  BlockAllocator alloc(kv.shape().num_blocks);
  Trace t;
  Sequence a, b;
  for (int64_t i = 0; i < 5; ++i) a.tokens.push_back(int32_t((i * 7 + 3) % V));
  for (int64_t i = 0; i < 400; ++i) b.tokens.push_back(int32_t((i * 13 + 1) % V));
  auto step = [&](const std::vector<Sequence*>& seqs, const std::vector<int64_t>& counts) {
    BatchBuilder bb(bs);
    for (size_t i = 0; i < seqs.size(); ++i) {
      if (!seqs[i]->reserve(alloc, seqs[i]->num_cached + counts[i], bs))
        throw std::runtime_error("scenario: KV cache too small");
      bb.add(*seqs[i], counts[i], false);
    }
    t.logits.push_back(m.forward(bb.build(), kv));
    for (size_t i = 0; i < seqs.size(); ++i) {
      seqs[i]->num_cached += counts[i];
      const int32_t next = argmax_cpu(t.logits.back().data() + i * size_t(V), V);
      seqs[i]->tokens.push_back(next);
      t.ids.push_back(next);
    }
  };
  step({&a}, {5});
  for (int i = 0; i < kFirstSteps; ++i) step({&a}, {1});
  step({&b}, {400});
  for (int i = 0; i < kPairSteps; ++i) step({&a, &b}, {1, 1});
  for (int64_t i = 0; i < long_steps; ++i) step({&a}, {1});
  return t;
}

void expect_same_trace(const Trace& got, const Trace& want, double rel_tol) {
  ASSERT_EQ(got.logits.size(), want.logits.size());
  ASSERT_EQ(got.ids.size(), want.ids.size());
  for (size_t i = 0; i < want.ids.size(); ++i)
    ASSERT_EQ(got.ids[i], want.ids[i]) << "greedy pick " << i << " differs";
  for (size_t s = 0; s < want.logits.size(); ++s) {
    ASSERT_EQ(got.logits[s].size(), want.logits[s].size());
    float worst = 0;
    for (size_t i = 0; i < want.logits[s].size(); ++i)
      worst = std::max(worst, std::fabs(got.logits[s][i] - want.logits[s][i]));  // NaN fails
    EXPECT_LE(worst, rel_tol * max_abs(want.logits[s])) << "step " << s;
  }
}

std::unique_ptr<Model> load_on(const std::string& dir, Backend& backend, Comm& comm) {
  const ModelConfig cfg = load_model_config(dir);
  auto src = open_checkpoint_source(dir);
  ModelWeights w = load_model_weights(*src, cfg, backend, comm.world());
  return std::make_unique<Model>(cfg, std::move(w), backend, comm);
}

// A CPU stand-in for graph replay: upload_batch copies each batch into storage that never
// moves (as the CUDA backend does into its device buffer); run_captured records each op of a
// key's first run as a closure over its arguments and, for the same key later, replays the
// closures without calling ops. Like a CUDA graph's pointers, recorded tensors do not own
// their memory: replaying a step whose buffers were freed (a key missing a generation) is an
// error. Equal results prove that the model's captured region reads nothing but its key, the
// batch arrays and live buffers.
class ReplayingBackend final : public Backend {
 public:
  explicit ReplayingBackend(Backend& cpu) : cpu_(cpu) {
    for (auto* v : staged_vectors()) v->reserve(kCapacity);
  }
  std::string name() const override { return "cpu (replaying)"; }
  Device device() const override { return cpu_.device(); }
  DType compute_dtype() const override { return cpu_.compute_dtype(); }
  Tensor alloc(DType dt, std::initializer_list<int64_t> dims) override {
    return cpu_.alloc(dt, dims);
  }
  Tensor upload(const Tensor& host) override { return cpu_.upload(host); }
  void download(const Tensor& src, void* dst) override { cpu_.download(src, dst); }
  void upload_into(const void* src, Tensor& dst) override { cpu_.upload_into(src, dst); }
  void prepare_rope(RopeTable& t) override { cpu_.prepare_rope(t); }
  BatchTensors upload_batch(const Batch& b) override {
    const std::vector<int32_t>* src[] = {&b.token_ids,    &b.positions,    &b.slot_mapping,
                                         &b.seq_begin,    &b.context_lens, &b.block_tables,
                                         &b.logit_indices};
    std::vector<std::vector<int32_t>*> dst = staged_vectors();
    for (size_t i = 0; i < dst.size(); ++i) {
      if (src[i]->size() > kCapacity) throw std::runtime_error("ReplayingBackend: batch too big");
      dst[i]->resize(src[i]->size());  // within capacity: the data never moves
      std::copy(src[i]->begin(), src[i]->end(), dst[i]->begin());
    }
    staged_.max_blocks_per_seq = b.max_blocks_per_seq;
    layout_ = {b.num_tokens(), b.num_seqs(), b.num_logits(), b.max_blocks_per_seq};
    return cpu_.upload_batch(staged_);
  }
  void run_captured(const StepKey& key, const std::function<void()>& ops) override {
    std::vector<int64_t> full = key.words;
    full.insert(full.end(), layout_.begin(), layout_.end());
    auto it = graphs_.find(full);
    if (it != graphs_.end()) {
      for (const auto& w : it->second.alive)
        if (w.expired())
          throw std::logic_error("replayed a captured step whose buffer was freed (stale key)");
      ++stats_.replays;
      for (auto& op : it->second.ops) op();
      return;
    }
    Recording rec;
    recording_ = &rec;
    try {
      ops();
    } catch (...) {
      recording_ = nullptr;
      throw;
    }
    recording_ = nullptr;
    graphs_.emplace(full, std::move(rec));
    ++stats_.captures;
  }
  bool step_capture() const override { return true; }
  StepCaptureStats step_capture_stats() const override { return stats_; }

  void embedding(const Tensor& table, int64_t vb, const BatchTensors& b, Tensor& out) override {
    op([=, this, table = weak(table), b = weak(b), out = weak(out)]() mutable {
      cpu_.embedding(table, vb, b, out);
    });
  }
  void rmsnorm(const Tensor& x, const Tensor& w, float eps, Tensor& out) override {
    op([=, this, x = weak(x), w = weak(w), out = weak(out)]() mutable {
      cpu_.rmsnorm(x, w, eps, out);
    });
  }
  void add_rmsnorm(Tensor& r, const Tensor& d, const Tensor& w, float eps, Tensor& out) override {
    op([=, this, r = weak(r), d = weak(d), w = weak(w), out = weak(out)]() mutable {
      cpu_.add_rmsnorm(r, d, w, eps, out);
    });
  }
  void linear(const Tensor& x, const LinearWeight& w, Tensor& out) override {
    LinearWeight lw = w;
    lw.weight = weak(w.weight);
    lw.bias = weak(w.bias);
    op([=, this, x = weak(x), out = weak(out)]() mutable { cpu_.linear(x, lw, out); });
  }
  void rope(Tensor& q, Tensor& k, const RopeTable& table, const BatchTensors& b) override {
    const RopeTable* t = &table;  // the model's, alive as long as the model
    op([=, this, q = weak(q), k = weak(k), b = weak(b)]() mutable { cpu_.rope(q, k, *t, b); });
  }
  void kv_write(const Tensor& k, const Tensor& v, KvLayer& cache, int64_t block_size,
                const BatchTensors& b) override {
    op([=, this, k = weak(k), v = weak(v), c = weak(cache), b = weak(b)]() mutable {
      cpu_.kv_write(k, v, c, block_size, b);
    });
  }
  void attention(const Tensor& q, const KvLayer& cache, int64_t block_size,
                 const AttentionParams& p, const BatchTensors& b, Tensor& out) override {
    op([=, this, q = weak(q), c = weak(cache), b = weak(b), out = weak(out)]() mutable {
      cpu_.attention(q, c, block_size, p, b, out);
    });
  }
  void silu_mul(const Tensor& gate, const Tensor& up, Tensor& out) override {
    op([=, this, g = weak(gate), u = weak(up), out = weak(out)]() mutable {
      cpu_.silu_mul(g, u, out);
    });
  }
  void gather_rows(const Tensor& x, const Tensor& indices, Tensor& out) override {
    op([=, this, x = weak(x), i = weak(indices), out = weak(out)]() mutable {
      cpu_.gather_rows(x, i, out);
    });
  }
  void gather_columns(const Tensor& x, const Tensor& indices, Tensor& out) override {
    op([=, this, x = weak(x), i = weak(indices), out = weak(out)]() mutable {
      cpu_.gather_columns(x, i, out);
    });
  }

 private:
  struct Recording {
    std::vector<std::function<void()>> ops;
    std::vector<std::weak_ptr<void>> alive;  // storages the recorded ops point into
  };
  static constexpr size_t kCapacity = 1 << 16;
  std::vector<std::vector<int32_t>*> staged_vectors() {
    return {&staged_.token_ids,    &staged_.positions,    &staged_.slot_mapping,
            &staged_.seq_begin,    &staged_.context_lens, &staged_.block_tables,
            &staged_.logit_indices};
  }
  // A non-owning copy (while recording, the storage is remembered to be checked on replay).
  Tensor weak(const Tensor& t) {
    Tensor c = t;
    if (recording_ != nullptr && c.storage) recording_->alive.push_back(c.storage);
    c.storage.reset();
    return c;
  }
  KvLayer weak(const KvLayer& l) { return KvLayer{weak(l.k), weak(l.v)}; }
  BatchTensors weak(const BatchTensors& b) {
    BatchTensors c = b;
    for (Tensor* t : {&c.token_ids, &c.positions, &c.slot_mapping, &c.seq_begin,
                      &c.context_lens, &c.block_tables, &c.logit_indices})
      *t = weak(*t);
    return c;
  }
  template <class F> void op(F f) {
    if (recording_ != nullptr) recording_->ops.push_back(f);
    f();
  }

  Backend& cpu_;
  Batch staged_;
  std::vector<int64_t> layout_;
  std::map<std::vector<int64_t>, Recording> graphs_;
  Recording* recording_ = nullptr;
  StepCaptureStats stats_;
};

const char* kModels[] = {"TinyStories-656K", "tiny-qwen2", "tiny-llama"};

std::string param_name(const std::string& model) {
  std::string n = model;
  for (char& c : n)
    if (!isalnum(static_cast<unsigned char>(c))) c = '_';
  return n;
}

class StepCaptureCpu : public ::testing::TestWithParam<const char*> {};

TEST_P(StepCaptureCpu, ReplayedStepsMatchEager) {
  TESSERA_REQUIRE_TESTDATA();
  const std::string dir = testdata_dir() + "/models/" + GetParam();
  CpuModel plain = load_cpu_model(dir);
  ReplayingBackend replaying(*plain.backend);
  std::unique_ptr<Comm> comm = make_single_comm();
  std::unique_ptr<Model> m = load_on(dir, replaying, *comm);
  const int64_t long_steps = 150;
  const Trace want = run_scenario(*plain.model, long_steps);
  const Trace got = run_scenario(*m, long_steps);
  expect_same_trace(got, want, 1e-6);
  // Only decode steps go through run_captured. The stand-in keys on the exact block-table
  // width (CUDA pads it), so A gets a key per 16 tokens.
  const StepCaptureStats st = replaying.step_capture_stats();
  EXPECT_EQ(st.captures + st.replays, kFirstSteps + kPairSteps + long_steps);
  EXPECT_GE(st.captures, 3);
  EXPECT_GE(st.replays, long_steps);
}

INSTANTIATE_TEST_SUITE_P(Goldens, StepCaptureCpu, ::testing::ValuesIn(kModels),
                         [](const auto& info) { return param_name(info.param); });

class CudaGraphs : public ::testing::TestWithParam<std::tuple<const char*, DType>> {};

TEST_P(CudaGraphs, DecodeMatchesWithoutGraphs) {
  TESSERA_REQUIRE_GPU();
  TESSERA_REQUIRE_TESTDATA();
#ifdef TESSERA_HAVE_CUDA
  const std::string dir = testdata_dir() + "/models/" + std::get<0>(GetParam());
  const DType dt = std::get<1>(GetParam());
  std::unique_ptr<Comm> comm = make_single_comm();
  const int64_t long_steps = 150;
  // Fresh backends and models: both runs start with empty workspaces and batch buffers.
  std::unique_ptr<Backend> eager_be = make_cuda_backend(0, dt);
  ASSERT_TRUE(eager_be->set_step_capture(false));
  std::unique_ptr<Model> eager = load_on(dir, *eager_be, *comm);
  const Trace want = run_scenario(*eager, long_steps);
  EXPECT_EQ(eager_be->step_capture_stats().captures, 0);

  std::unique_ptr<Backend> graph_be = make_cuda_backend(0, dt);
  ASSERT_TRUE(graph_be->set_step_capture(true));
  std::unique_ptr<Model> graphed = load_on(dir, *graph_be, *comm);
  const Trace got = run_scenario(*graphed, long_steps);
  const StepCaptureStats st = graph_be->step_capture_stats();
  EXPECT_EQ(st.failures, 0) << "a capture failed (see the notice on stderr)";
  // Keys: A (stride 8), A+B, A after the workspace grew (stride 8), A at stride 16.
  EXPECT_GE(st.captures, 4);
  EXPECT_GE(st.replays, long_steps - 10);
  EXPECT_EQ(st.eager + st.captures + st.replays, kFirstSteps + kPairSteps + long_steps);
  expect_same_trace(got, want, 1e-6);
#endif
}

TEST(CudaGraphsEnv, ZeroTurnsCaptureOff) {
  TESSERA_REQUIRE_GPU();
#ifdef TESSERA_HAVE_CUDA
  const char* old = std::getenv("TESSERA_CUDA_GRAPHS");
  const std::string saved = old ? old : "";
  setenv("TESSERA_CUDA_GRAPHS", "0", 1);
  const bool off = !make_cuda_backend(0, DType::BF16)->step_capture();
  unsetenv("TESSERA_CUDA_GRAPHS");
  const bool on = make_cuda_backend(0, DType::BF16)->step_capture();
  if (old) setenv("TESSERA_CUDA_GRAPHS", saved.c_str(), 1);
  EXPECT_TRUE(off) << "TESSERA_CUDA_GRAPHS=0 left capture on";
  EXPECT_TRUE(on) << "capture is off by default";
#endif
}

INSTANTIATE_TEST_SUITE_P(
    Goldens, CudaGraphs,
    ::testing::Combine(::testing::ValuesIn(kModels), ::testing::Values(DType::F16, DType::BF16)),
    [](const auto& info) {
      return param_name(std::get<0>(info.param)) + "_" + dtype_name(std::get<1>(info.param));
    });

}  // namespace
}  // namespace tessera::test

// The attention-side CUDA ops against their CPU twins: rope, kv_write and paged attention
// (prefill, decode, several sequences at once, GQA ratios 1/4/7/20, head_dim 64/66/80/128/256,
// contexts 1/17/1000/5000, sliding window; the default choice (prefill batches in fp16 / bf16
// on the tensor-core kernel where its head dims allow: 64, 80, 128), the tiled kernel
// (TESSERA_ATTENTION=tiled) and the naive one (=naive)), and all of them with an int8 cache
// (kv_write_int8: the same bytes and scales as the CPU; attention_int8: the CPU's attention
// over the same int8 cache).
// Suite CudaOps, with cuda_ops_test.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <numeric>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>

#include "runtime/backend_cuda.h"
#include "tests/cuda_test_util.h"

namespace tessera::test {
namespace {

struct Heads { int64_t head_dim, heads, kv_heads; };
// GQA ratios 1, 4, 7 and 20 (two head chunks of the tiled kernel); head_dim 256 (its largest
// tiles and registers) and 66 (not a multiple of 4: the scalar shared-memory reads).
const Heads kHeads[] = {{64, 4, 4}, {80, 8, 2}, {128, 14, 2}, {256, 8, 2}, {80, 20, 1},
                        {66, 6, 2}};
constexpr int64_t kBlock = 16;

// A batch of sequences with `ctx[s]` tokens in the cache after the step, the last `fresh[s]`
// of them new; block tables use shuffled block ids so paging mistakes show.
Batch paged_batch(const std::vector<int64_t>& ctx, const std::vector<int64_t>& fresh,
                  int64_t num_blocks, std::mt19937& rng) {
  Batch b;
  std::vector<int32_t> blocks(static_cast<size_t>(num_blocks));
  std::iota(blocks.begin(), blocks.end(), 0);
  std::shuffle(blocks.begin(), blocks.end(), rng);
  int64_t max_blocks = 0;
  for (int64_t c : ctx) max_blocks = std::max(max_blocks, (c + kBlock - 1) / kBlock);
  b.max_blocks_per_seq = int32_t(max_blocks);
  b.block_tables.assign(size_t(max_blocks) * ctx.size(), -1);
  size_t next = 0;
  b.seq_begin.push_back(0);
  for (size_t s = 0; s < ctx.size(); ++s) {
    int32_t* table = b.block_tables.data() + s * size_t(max_blocks);
    for (int64_t j = 0; j < (ctx[s] + kBlock - 1) / kBlock; ++j) table[j] = blocks.at(next++);
    for (int64_t p = ctx[s] - fresh[s]; p < ctx[s]; ++p) {
      b.token_ids.push_back(int32_t(p % 100));
      b.positions.push_back(int32_t(p));
      b.slot_mapping.push_back(table[p / kBlock] * int32_t(kBlock) + int32_t(p % kBlock));
      b.logit_indices.push_back(int32_t(b.token_ids.size() - 1));
    }
    b.seq_begin.push_back(int32_t(b.token_ids.size()));
    b.context_lens.push_back(int32_t(ctx[s]));
  }
  return b;
}

// An I8 cache layer on the host and its byte-for-byte copy on the GPU: random integers in
// [-127, 127] and scales in [0.005, 0.03] (dequantized values up to ~3.8).
std::pair<KvLayer, KvLayer> int8_caches(int64_t nb, int64_t kvh, int64_t d, std::mt19937& rng) {
  KvLayer c{host_tensor(DType::I8, {nb, kvh, kBlock, d}),
            host_tensor(DType::I8, {nb, kvh, kBlock, d}),
            host_tensor(DType::F32, {nb, kvh, kBlock}), host_tensor(DType::F32, {nb, kvh, kBlock})};
  std::uniform_int_distribution<int> qd(-127, 127);
  std::uniform_real_distribution<float> sd(0.005f, 0.03f);
  for (const Tensor* t : {&c.k, &c.v})
    for (int64_t i = 0; i < t->numel(); ++i) t->ptr<int8_t>()[i] = int8_t(qd(rng));
  for (const Tensor* t : {&c.k_scale, &c.v_scale})
    for (int64_t i = 0; i < t->numel(); ++i) t->ptr<float>()[i] = sd(rng);
  KvLayer g{cuda_copy_to_device(c.k), cuda_copy_to_device(c.v), cuda_copy_to_device(c.k_scale),
            cuda_copy_to_device(c.v_scale)};
  return {c, g};
}

std::vector<uint8_t> bytes_of(Backend& b, const Tensor& t) {
  std::vector<uint8_t> raw(t.nbytes());
  b.download(t, raw.data());
  return raw;
}

TESSERA_CUDA_OP_TEST(rope) {
  std::mt19937 rng(11);
  Backend &cpu = cpu_backend(), &gpu = gpu_backend(dt);
  for (const Heads& hd : kHeads) {
    RopeTable ct, gt;
    for (int64_t i = 0; i < hd.head_dim / 2; ++i)
      ct.inv_freq.push_back(std::pow(1e6, -2.0 * double(i) / double(hd.head_dim)));
    gt.inv_freq = ct.inv_freq;
    cpu.prepare_rope(ct);
    gpu.prepare_rope(gt);
    for (int64_t n : {1, 17, 1000}) {
      Batch b;
      for (int64_t t = 0; t < n; ++t) b.positions.push_back(int32_t(rng() % 32768));
      b.token_ids.assign(size_t(n), 0);
      const auto q = round_to(random_values(size_t(n * hd.heads * hd.head_dim), rng), dt);
      const auto k = round_to(random_values(size_t(n * hd.kv_heads * hd.head_dim), rng), dt);
      Tensor cq = host_from(q, DType::F32, {n, hd.heads, hd.head_dim});
      Tensor ck = host_from(k, DType::F32, {n, hd.kv_heads, hd.head_dim});
      Tensor gq = gpu_from(q, dt, {n, hd.heads, hd.head_dim});
      Tensor gk = gpu_from(k, dt, {n, hd.kv_heads, hd.head_dim});
      cpu.rope(cq, ck, ct, cpu.upload_batch(b));
      gpu.rope(gq, gk, gt, gpu.upload_batch(b));
      EXPECT_LT(rel_error(values_of(gpu, gq), values_of(cpu, cq)), tolerance(dt))
          << "q head_dim " << hd.head_dim << " n " << n;
      EXPECT_LT(rel_error(values_of(gpu, gk), values_of(cpu, ck)), tolerance(dt))
          << "k head_dim " << hd.head_dim << " n " << n;
    }
  }
}

TESSERA_CUDA_OP_TEST(kv_write) {
  std::mt19937 rng(12);
  Backend &cpu = cpu_backend(), &gpu = gpu_backend(dt);
  for (const Heads& hd : kHeads) {
    for (int64_t n : {1, 17, 1000}) {
      const int64_t nb = n / kBlock + 4, kvh = hd.kv_heads, d = hd.head_dim;
      const Batch b = paged_batch({n + 3}, {n}, nb, rng);  // 3 cached tokens, n new
      // Both caches start from the same content; everything but the new slots must survive.
      const auto init = round_to(random_values(size_t(nb * kvh * kBlock * d), rng), dt);
      KvLayer cc{host_from(init, DType::F32, {nb, kvh, kBlock, d}),
                 host_from(init, DType::F32, {nb, kvh, kBlock, d})};
      KvLayer gc{gpu_from(init, dt, {nb, kvh, kBlock, d}), gpu_from(init, dt, {nb, kvh, kBlock, d})};
      const auto k = round_to(random_values(size_t(n * kvh * d), rng), dt);
      const auto v = round_to(random_values(size_t(n * kvh * d), rng), dt);
      cpu.kv_write(host_from(k, DType::F32, {n, kvh, d}), host_from(v, DType::F32, {n, kvh, d}),
                   cc, kBlock, cpu.upload_batch(b));
      gpu.kv_write(gpu_from(k, dt, {n, kvh, d}), gpu_from(v, dt, {n, kvh, d}), gc, kBlock,
                   gpu.upload_batch(b));
      EXPECT_EQ(rel_error(values_of(gpu, gc.k), values_of(cpu, cc.k)), 0.0) << "n " << n;
      EXPECT_EQ(rel_error(values_of(gpu, gc.v), values_of(cpu, cc.v)), 0.0) << "n " << n;
    }
  }
}

TESSERA_CUDA_OP_TEST(kv_write_int8) {
  std::mt19937 rng(14);
  Backend &cpu = cpu_backend(), &gpu = gpu_backend(dt);
  for (const Heads& hd : kHeads) {
    for (int64_t n : {1, 17, 1000}) {
      const int64_t nb = n / kBlock + 4, kvh = hd.kv_heads, d = hd.head_dim;
      const Batch b = paged_batch({n + 3}, {n}, nb, rng);  // 3 cached tokens, n new
      auto [cc, gc] = int8_caches(nb, kvh, d, rng);
      auto k = round_to(random_values(size_t(n * kvh * d), rng, -3.0f, 3.0f), dt);
      auto v = round_to(random_values(size_t(n * kvh * d), rng), dt);
      std::fill_n(k.begin(), d, 0.0f);  // token 0's kv head 0: an all-zero row (s = 0)
      cpu.kv_write(host_from(k, DType::F32, {n, kvh, d}), host_from(v, DType::F32, {n, kvh, d}),
                   cc, kBlock, cpu.upload_batch(b));
      gpu.kv_write(gpu_from(k, dt, {n, kvh, d}), gpu_from(v, dt, {n, kvh, d}), gc, kBlock,
                   gpu.upload_batch(b));
      // The same float operations on the same values: identical bytes, untouched rows too.
      EXPECT_EQ(bytes_of(gpu, gc.k), bytes_of(cpu, cc.k)) << "n " << n;
      EXPECT_EQ(bytes_of(gpu, gc.v), bytes_of(cpu, cc.v)) << "n " << n;
      EXPECT_EQ(bytes_of(gpu, gc.k_scale), bytes_of(cpu, cc.k_scale)) << "n " << n;
      EXPECT_EQ(bytes_of(gpu, gc.v_scale), bytes_of(cpu, cc.v_scale)) << "n " << n;
    }
  }
}

// One scenario: sequences with contexts ctx (fresh[s] new tokens each) over a random cache
// (in the compute dtype, or int8).
void check_attention(DType dt, const Heads& hd, const std::vector<int64_t>& ctx,
                     const std::vector<int64_t>& fresh, int64_t window, std::mt19937& rng,
                     bool int8 = false) {
  Backend &cpu = cpu_backend(), &gpu = gpu_backend(dt);
  int64_t nb = 0;
  for (int64_t c : ctx) nb += (c + kBlock - 1) / kBlock;
  nb += 2;
  const Batch b = paged_batch(ctx, fresh, nb, rng);
  const int64_t n = b.num_tokens(), kvh = hd.kv_heads, d = hd.head_dim;
  const auto k = round_to(random_values(size_t(nb * kvh * kBlock * d), rng, -2.0f, 2.0f), dt);
  const auto v = round_to(random_values(size_t(nb * kvh * kBlock * d), rng), dt);
  const auto q = round_to(random_values(size_t(n * hd.heads * d), rng, -2.0f, 2.0f), dt);
  KvLayer cc{host_from(k, DType::F32, {nb, kvh, kBlock, d}),
             host_from(v, DType::F32, {nb, kvh, kBlock, d})};
  KvLayer gc{gpu_from(k, dt, {nb, kvh, kBlock, d}), gpu_from(v, dt, {nb, kvh, kBlock, d})};
  if (int8) std::tie(cc, gc) = int8_caches(nb, kvh, d, rng);
  AttentionParams p;
  p.num_heads = hd.heads;
  p.num_kv_heads = kvh;
  p.head_dim = d;
  p.scale = float(1.0 / std::sqrt(double(d)));
  p.sliding_window = window;
  Tensor want = cpu.alloc(DType::F32, {n, hd.heads * d});
  cpu.attention(host_from(q, DType::F32, {n, hd.heads, d}), cc, kBlock, p, cpu.upload_batch(b),
                want);
  const auto ref = values_of(cpu, want);
  // The default (tensor-core prefill where mma_attention_applies, else tiled), then the others
  // as TESSERA_ATTENTION picks them.
  for (const char* kernel : {"default", "tiled", "naive"}) {
    if (std::string(kernel) != "default") setenv("TESSERA_ATTENTION", kernel, 1);
    Tensor got = gpu_poisoned(gpu, dt, {n, hd.heads * d});
    gpu.attention(gpu_from(q, dt, {n, hd.heads, d}), gc, kBlock, p, gpu.upload_batch(b), got);
    unsetenv("TESSERA_ATTENTION");
    std::ostringstream what;
    what << kernel << " head_dim " << d << " heads " << hd.heads << "/" << kvh << " window "
         << window << (int8 ? " int8" : "") << " ctx";
    for (int64_t c : ctx) what << ' ' << c;
    EXPECT_LT(rel_error(values_of(gpu, got), ref), tolerance(dt)) << what.str();
  }
}

TESSERA_CUDA_OP_TEST(attention) {
  std::mt19937 rng(13);
  for (const Heads& hd : kHeads) {
    for (int64_t L : {1, 17, 1000}) check_attention(dt, hd, {L}, {L}, 0, rng);  // prefill
    check_attention(dt, hd, {1, 17, 1000}, {1, 1, 1}, 0, rng);                  // decode
    check_attention(dt, hd, {5000}, {1}, 0, rng);         // one long context: split-K
    check_attention(dt, hd, {40, 1000}, {23, 5}, 0, rng);                       // chunked
    check_attention(dt, hd, {300, 1000, 7}, {200, 1, 7}, 0, rng);  // decode beside prefill
    check_attention(dt, hd, {1000}, {1000}, 64, rng);                           // window
    check_attention(dt, hd, {1000, 300}, {1, 1}, 100, rng);
  }
}

TESSERA_CUDA_OP_TEST(attention_int8) {
  std::mt19937 rng(15);
  for (const Heads& hd : kHeads) {
    for (int64_t L : {1, 17, 1000}) check_attention(dt, hd, {L}, {L}, 0, rng, true);
    check_attention(dt, hd, {1, 17, 1000}, {1, 1, 1}, 0, rng, true);
    check_attention(dt, hd, {5000}, {1}, 0, rng, true);
    check_attention(dt, hd, {40, 1000}, {23, 5}, 0, rng, true);
    check_attention(dt, hd, {300, 1000, 7}, {200, 1, 7}, 0, rng, true);
    check_attention(dt, hd, {1000, 300}, {1, 1}, 100, rng, true);
  }
}

}  // namespace
}  // namespace tessera::test

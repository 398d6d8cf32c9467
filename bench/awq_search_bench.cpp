// Time of `tessera quantize --method awq`'s searches for one decoder layer of a real model's
// shape (random weights and activations: the cost depends on shapes, not values), and the
// whole model extrapolated from it. Usage:
//   awq_search_bench CONFIG.json [calib_rows=512] [threads=0]
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>

#include "runtime/awq.h"
#include "runtime/model_config.h"

using namespace tessera;

namespace {

Matrix random_matrix(int64_t rows, int64_t cols, std::mt19937& rng, float sd) {
  std::normal_distribution<float> n(0.0f, sd);
  Matrix m(rows, cols);
  for (float& v : m.v) v = n(rng);
  return m;
}

// rows of activations, every 64th channel 20x larger (the outliers AWQ is about).
ActivationStats activations(int64_t rows, int64_t in, std::mt19937& rng) {
  ActivationRecorder rec(1, rows);
  Matrix x = random_matrix(rows, in, rng, 1.0f);
  for (int64_t t = 0; t < rows; ++t)
    for (int64_t c = 0; c < in; c += 64) x.row(t)[c] *= 20.0f;
  rec.observer()(0, LinearInput::kMlp, make_tensor_view(x.v.data(), DType::F32, {rows, in}));
  return rec.at(0, LinearInput::kMlp);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CONFIG.json [calib_rows=512] [threads=0]\n", argv[0]);
    return 2;
  }
  const ModelConfig cfg = load_model_config(argv[1]);
  const int64_t rows = argc > 2 ? std::atoll(argv[2]) : 512;
  if (argc > 3 && std::atoi(argv[3]) > 0) omp_set_num_threads(std::atoi(argv[3]));
  const int64_t H = cfg.hidden_size, I = cfg.intermediate_size, g = 128;
  std::mt19937 rng(1);
  const Matrix q = random_matrix(cfg.q_size(), H, rng, 0.02f), k = random_matrix(cfg.kv_size(), H, rng, 0.02f),
               v = random_matrix(cfg.kv_size(), H, rng, 0.02f), o = random_matrix(H, cfg.q_size(), rng, 0.02f),
               gate = random_matrix(I, H, rng, 0.02f), up = random_matrix(I, H, rng, 0.02f),
               down = random_matrix(H, I, rng, 0.02f);
  const ActivationStats xa = activations(rows, H, rng), xo = activations(rows, cfg.q_size(), rng),
                        xd = activations(rows, I, rng);
  const auto t0 = std::chrono::steady_clock::now();
  const ScaleChoice sa = search_scales({&q, &k, &v}, xa, g, {});
  const ScaleChoice so = search_scales({&o}, xo, g, {});
  const ScaleChoice sm = search_scales({&gate, &up}, xa, g, {});
  const ScaleChoice sd = search_scales({&down}, xd, g, {});
  const double scale_s = seconds_since(t0);
  const auto t1 = std::chrono::steady_clock::now();
  search_clip(v, xa, g, sa.scales);
  search_clip(o, xo, g, so.scales);
  search_clip(gate, xa, g, sm.scales);
  search_clip(up, xa, g, sm.scales);
  search_clip(down, xd, g, sd.scales);
  const double clip_s = seconds_since(t1);
  std::printf("shape %s: hidden %lld, intermediate %lld, %lld layers; %lld calibration rows, "
              "%d threads\n",
              argv[1], (long long)H, (long long)I, (long long)cfg.num_layers, (long long)rows,
              omp_get_max_threads());
  std::printf("one layer: scale search %.1f s, clip search %.1f s; whole model ~%.1f min\n",
              scale_s, clip_s, (scale_s + clip_s) * double(cfg.num_layers) / 60.0);
  std::printf("error vs RTN on the sample: qkv %.3f  o %.3f  gate/up %.3f  down %.3f\n",
              sa.loss / sa.rtn_loss, so.loss / so.rtn_loss, sm.loss / sm.rtn_loss,
              sd.loss / sd.rtn_loss);
  return 0;
}

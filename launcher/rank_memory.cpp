#include "launcher/rank_memory.h"

#include <cmath>
#include <fstream>
#include <string>

namespace tessera {
namespace {

double resident_bytes() {
  std::ifstream f("/proc/self/status");
  std::string key;
  for (std::string line; std::getline(f, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) * 1024.0;
  return 0;
}

}  // namespace

std::vector<RankMemory> gather_rank_memory(Comm& comm, const ModelWeights& w) {
  const int n = comm.world().size;
  // MiB in F32 (the gather's element type): exact enough for a report.
  Tensor mine = host_tensor(DType::F32, {2});
  mine.ptr<float>()[0] = float(double(w.bytes) / 1048576.0);
  mine.ptr<float>()[1] = float(resident_bytes() / 1048576.0);
  Tensor all = host_tensor(DType::F32, {int64_t(n) * 2});
  if (n == 1)
    all = mine;
  else
    comm.all_gather(mine, all);
  std::vector<RankMemory> out(static_cast<size_t>(n));
  for (int r = 0; r < n; ++r) {
    out[size_t(r)].weights_bytes = double(all.ptr<float>()[2 * r]) * 1048576.0;
    out[size_t(r)].rss_bytes = double(all.ptr<float>()[2 * r + 1]) * 1048576.0;
  }
  return out;
}

nlohmann::json rank_memory_json(const std::vector<RankMemory>& m) {
  nlohmann::json ranks = nlohmann::json::array();
  for (const RankMemory& r : m)
    ranks.push_back({{"weights_mib", std::round(r.weights_bytes / 1048576.0 * 10) / 10},
                     {"rss_mib", std::round(r.rss_bytes / 1048576.0 * 10) / 10}});
  return ranks;
}

}  // namespace tessera

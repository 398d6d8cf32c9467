#include "parallel/step_broadcast.h"

#include <cstdint>
#include <vector>

namespace tessera {
namespace {

// Header of a plan: [kind, num_tokens, num_seqs, max_blocks_per_seq, num_logits].
enum : int32_t { kStep = 1, kShutdown = 2 };
constexpr int kHeader = 5;

void append(std::vector<int32_t>& out, const std::vector<int32_t>& v) {
  out.insert(out.end(), v.begin(), v.end());
}

}  // namespace

void send_step(Comm& comm, const Batch& b) {
  int32_t header[kHeader] = {kStep, int32_t(b.num_tokens()), int32_t(b.num_seqs()),
                             b.max_blocks_per_seq, int32_t(b.num_logits())};
  comm.broadcast(header, sizeof header, 0);
  std::vector<int32_t> payload;
  for (const auto* v : {&b.token_ids, &b.positions, &b.slot_mapping, &b.seq_begin,
                        &b.context_lens, &b.block_tables, &b.logit_indices})
    append(payload, *v);
  comm.broadcast(payload.data(), payload.size() * sizeof(int32_t), 0);
}

void send_shutdown(Comm& comm) {
  int32_t header[kHeader] = {kShutdown, 0, 0, 0, 0};
  comm.broadcast(header, sizeof header, 0);
}

std::optional<Batch> receive_step(Comm& comm) {
  int32_t header[kHeader] = {};
  comm.broadcast(header, sizeof header, 0);
  if (header[0] != kStep) return std::nullopt;
  const size_t tokens = size_t(header[1]), seqs = size_t(header[2]),
               width = size_t(header[3]), logits = size_t(header[4]);
  std::vector<int32_t> payload(tokens * 3 + (seqs + 1) + seqs + seqs * width + logits);
  comm.broadcast(payload.data(), payload.size() * sizeof(int32_t), 0);
  Batch b;
  b.max_blocks_per_seq = header[3];
  size_t at = 0;
  auto take = [&](std::vector<int32_t>& v, size_t n) {
    v.assign(payload.begin() + long(at), payload.begin() + long(at + n));
    at += n;
  };
  take(b.token_ids, tokens);
  take(b.positions, tokens);
  take(b.slot_mapping, tokens);
  take(b.seq_begin, seqs + 1);
  take(b.context_lens, seqs);
  take(b.block_tables, seqs * width);
  take(b.logit_indices, logits);
  return b;
}

}  // namespace tessera

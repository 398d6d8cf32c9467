// Step plans under tensor parallel: rank 0 sends every step's Batch to the other ranks,
// which run the same forward pass on their shard; an empty "shutdown" plan ends their loop.
#pragma once
#include <optional>

#include "parallel/comm.h"
#include "runtime/batch.h"

namespace tessera {

void send_step(Comm& comm, const Batch& batch);  // on rank 0
void send_shutdown(Comm& comm);                  // on rank 0
// On the other ranks: the next step, or nullopt when rank 0 shut down.
std::optional<Batch> receive_step(Comm& comm);

}  // namespace tessera

// The communicator of this process's job: MPI when started by mpirun (and built with MPI),
// else the single-rank one. One per process.
#pragma once
#include "parallel/comm.h"

namespace tessera {

std::unique_ptr<Comm> make_world_comm();
// True when this process is one of several ranks.
bool in_multi_rank_job();
// Ends every rank of the job with `code` (MPI_Abort): one rank's failure must never leave
// the others waiting in a collective. Returns only in a single-rank process.
void abort_job(int code);

}  // namespace tessera

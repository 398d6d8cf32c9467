#include "parallel/world_comm.h"

#ifdef TESSERA_HAVE_MPI
#include <mpi.h>

#include "parallel/comm_mpi.h"
#endif

namespace tessera {

std::unique_ptr<Comm> make_world_comm() {
#ifdef TESSERA_HAVE_MPI
  if (launched_under_mpi()) return make_mpi_comm();
#endif
  return make_single_comm();
}

bool in_multi_rank_job() {
#ifdef TESSERA_HAVE_MPI
  int initialized = 0, size = 1;
  MPI_Initialized(&initialized);
  if (initialized) MPI_Comm_size(MPI_COMM_WORLD, &size);
  return size > 1;
#else
  return false;
#endif
}

void abort_job(int code) {
#ifdef TESSERA_HAVE_MPI
  if (in_multi_rank_job()) MPI_Abort(MPI_COMM_WORLD, code);
#endif
  (void)code;
}

}  // namespace tessera

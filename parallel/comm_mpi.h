// The MPI communicator (built when TESSERA_MPI is on: TESSERA_HAVE_MPI).
#pragma once
#include <memory>

#include "parallel/comm.h"

namespace tessera {

// True when this process was started by mpirun/mpiexec (it sets OMPI_*/PMI* variables).
bool launched_under_mpi();
// Initialises MPI (once) and returns the communicator of MPI_COMM_WORLD.
std::unique_ptr<Comm> make_mpi_comm();

}  // namespace tessera

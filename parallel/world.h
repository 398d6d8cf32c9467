// World: where this process sits in a tensor-parallel job. A single process is rank 0 of 1.
#pragma once
#include <cstdint>

namespace tessera {

struct World {
  int rank = 0;        // this rank, 0 .. size - 1
  int size = 1;        // number of ranks (= tensor-parallel size)
  int local_rank = 0;  // rank on this node: selects the GPU
  int local_size = 1;  // ranks on this node (more than its GPUs: ranks share GPUs)

  bool is_root() const { return rank == 0; }
  int tp() const { return size; }
};

}  // namespace tessera

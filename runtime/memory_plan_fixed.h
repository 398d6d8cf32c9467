// The memory plan of one explicit request (memory_plan.cpp): weights as asked or stored, no
// auto choice, no options. make_plan (memory_plan_search.cpp) builds on it.
#pragma once
#include <cstdint>

#include "runtime/memory_plan.h"

namespace tessera {

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Throws UserError for a request that cannot be planned (see make_plan).
void validate_plan_request(const PlanRequest& r);
// The plan of `r` with r.weights_auto ignored; options are not filled in.
Plan plan_fixed(const PlanRequest& r);

}  // namespace tessera

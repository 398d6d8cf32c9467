// Argument checks of the backends' ops. They run on every op of every step, so the message
// (strings, shapes) is built only when a check fails.
#pragma once
#include <stdexcept>
#include <string>

namespace tessera {

[[noreturn]] inline void fail_backend_op(const char* backend, const char* op,
                                         const std::string& what) {
  throw std::invalid_argument(std::string(backend) + " backend " + op + ": " + what);
}

}  // namespace tessera

#define TESSERA_EXPECT_OP(backend, ok, op, what)                   \
  do {                                                             \
    if (!(ok)) ::tessera::fail_backend_op(backend, op, what);      \
  } while (false)

// Errors tessera raises. A UserError is the user's mistake (a bad flag, file or input): the
// CLI prints its one-line message and exits 2. Anything else is a bug or an environment
// failure and exits 1.
#pragma once
#include <stdexcept>
#include <string>

namespace tessera {

struct UserError : std::runtime_error {
  explicit UserError(const std::string& msg) : std::runtime_error(msg) {}
};

// Throws UserError(msg) when cond is false. For validating things a user controls.
inline void require(bool cond, const std::string& msg) {
  if (!cond) throw UserError(msg);
}

}  // namespace tessera

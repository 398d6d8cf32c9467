// Parsing of numeric command-line values shared by the subcommands.
#pragma once
#include <optional>
#include <string>

namespace tessera {

// The whole of `text` as a base-10 integer, or nullopt (empty, trailing junk, out of range).
inline std::optional<long long> parse_integer(const std::string& text) {
  size_t used = 0;
  long long v = 0;
  try {
    v = std::stoll(text, &used);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  if (text.empty() || used != text.size()) return std::nullopt;
  return v;
}

}  // namespace tessera

// Parsing of command-line values shared by the subcommands.
#pragma once
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <utility>

#include "runtime/error.h"

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

// A leading decimal number and the unit text after it ("512MiB" -> {512, "MiB"}); the number
// is 0 and the unit the whole text when there is no number.
inline std::pair<double, std::string> split_number_unit(const std::string& text) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  return {used > 0 ? v : 0.0, text.substr(used)};
}

// The whole of a text file named by `option` ("--file"); UserError "OPTION: cannot read PATH".
inline std::string read_text_file(const std::string& path, const std::string& option) {
  require(std::filesystem::is_regular_file(path), option + ": cannot read " + path);
  std::ifstream f(path, std::ios::binary);
  require(bool(f), option + ": cannot read " + path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace tessera

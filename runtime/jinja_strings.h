// Python str methods used by the Jinja interpreter, on UTF-8 strings. Case mapping is ASCII
// only (non-ASCII letters are left unchanged).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace tessera::jinja::strings {

// chars empty: strip whitespace (Python's default); else strip any of the bytes in chars.
std::string strip(const std::string& s, const std::string& chars);
std::string lstrip(const std::string& s, const std::string& chars);
std::string rstrip(const std::string& s, const std::string& chars);
std::string upper(std::string s);
std::string lower(std::string s);
std::string capitalize(const std::string& s);   // "hELLO" -> "Hello"
std::string python_title(const std::string& s);  // str.title(): "they're" -> "They'Re"
std::string jinja_title(const std::string& s);   // |title: words split at spaces and -([{<
// count < 0: replace all.
std::string replace(const std::string& s, const std::string& from, const std::string& to, int64_t count);
// sep_is_none: split on runs of whitespace, dropping empty parts. maxsplit < 0: no limit.
std::vector<std::string> split(const std::string& s, const std::string& sep, bool sep_is_none, int64_t maxsplit);
std::string html_escape(const std::string& s);

}  // namespace tessera::jinja::strings

#include "runtime/jinja_strings.h"

#include <cctype>

namespace tessera::jinja::strings {

namespace {
bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool in_set(char c, const std::string& chars) {
  return chars.empty() ? is_ws(c) : chars.find(c) != std::string::npos;
}
bool is_alpha(char c) { return std::isalpha(static_cast<unsigned char>(c)) != 0; }
char up(char c) { return char(std::toupper(static_cast<unsigned char>(c))); }
char down(char c) { return char(std::tolower(static_cast<unsigned char>(c))); }
}  // namespace

std::string lstrip(const std::string& s, const std::string& chars) {
  size_t b = 0;
  while (b < s.size() && in_set(s[b], chars)) ++b;
  return s.substr(b);
}

std::string rstrip(const std::string& s, const std::string& chars) {
  size_t e = s.size();
  while (e > 0 && in_set(s[e - 1], chars)) --e;
  return s.substr(0, e);
}

std::string strip(const std::string& s, const std::string& chars) { return lstrip(rstrip(s, chars), chars); }

std::string upper(std::string s) {
  for (char& c : s) c = up(c);
  return s;
}

std::string lower(std::string s) {
  for (char& c : s) c = down(c);
  return s;
}

std::string capitalize(const std::string& s) {
  std::string out = lower(s);
  if (!out.empty()) out[0] = up(out[0]);
  return out;
}

std::string python_title(const std::string& s) {
  std::string out = s;
  bool prev_cased = false;
  for (char& c : out) {
    if (is_alpha(c)) {
      c = prev_cased ? down(c) : up(c);
      prev_cased = true;
    } else {
      prev_cased = false;
    }
  }
  return out;
}

std::string jinja_title(const std::string& s) {
  std::string out;
  bool word_start = true;
  for (char c : s) {
    bool sep = is_ws(c) || c == '-' || c == '(' || c == '{' || c == '[' || c == '<';
    if (sep) {
      out += c;
      word_start = true;
    } else {
      out += word_start ? up(c) : down(c);
      word_start = false;
    }
  }
  return out;
}

std::string replace(const std::string& s, const std::string& from, const std::string& to, int64_t count) {
  std::string out;
  if (from.empty()) {  // Python inserts `to` between every character (and at both ends)
    int64_t n = 0;
    for (size_t k = 0; k <= s.size(); ++k) {
      if (count < 0 || n < count) {
        out += to;
        ++n;
      }
      if (k < s.size()) out += s[k];
    }
    return out;
  }
  size_t pos = 0;
  int64_t n = 0;
  for (;;) {
    size_t hit = s.find(from, pos);
    if (hit == std::string::npos || (count >= 0 && n >= count)) break;
    out += s.substr(pos, hit - pos) + to;
    pos = hit + from.size();
    ++n;
  }
  return out + s.substr(pos);
}

std::vector<std::string> split(const std::string& s, const std::string& sep, bool sep_is_none, int64_t maxsplit) {
  std::vector<std::string> out;
  if (sep_is_none) {
    size_t k = 0;
    while (k < s.size()) {
      while (k < s.size() && is_ws(s[k])) ++k;
      if (k >= s.size()) break;
      if (maxsplit >= 0 && int64_t(out.size()) >= maxsplit) {
        out.push_back(rstrip(s.substr(k), ""));
        break;
      }
      size_t e = k;
      while (e < s.size() && !is_ws(s[e])) ++e;
      out.push_back(s.substr(k, e - k));
      k = e;
    }
    return out;
  }
  size_t pos = 0;
  for (;;) {
    size_t hit = s.find(sep, pos);
    if (hit == std::string::npos || (maxsplit >= 0 && int64_t(out.size()) >= maxsplit)) break;
    out.push_back(s.substr(pos, hit - pos));
    pos = hit + sep.size();
  }
  out.push_back(s.substr(pos));
  return out;
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

}  // namespace tessera::jinja::strings

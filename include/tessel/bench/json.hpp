// A JSON object built field by field and written on one line: the format of
// every benchmark record (`tessel bench`, bench/, the PyTorch peers).
#pragma once

#include <cmath>
#include <cstdio>
#include <string>

#include "tessel/cli/args.hpp"

namespace tessel::bench {

class json_line {
 public:
  json_line& add(const std::string& key, const std::string& value) {
    return add_raw(key, cli::json_string(value));
  }
  json_line& add(const std::string& key, const char* value) { return add(key, std::string(value)); }
  // Non-finite numbers have no JSON spelling: they are written as null.
  json_line& add(const std::string& key, double value) {
    if (!std::isfinite(value)) return add_raw(key, "null");
    char text[64];
    std::snprintf(text, sizeof text, "%.9g", value);
    return add_raw(key, text);
  }
  // `json` is already JSON text: a nested object, an array, true or null.
  json_line& add_raw(const std::string& key, const std::string& json) {
    body_ += (body_.empty() ? "" : ", ") + cli::json_string(key) + ": " + json;
    return *this;
  }
  std::string str() const { return "{" + body_ + "}"; }

 private:
  std::string body_;
};

}  // namespace tessel::bench

// Command-line parsing for the `tessel` program: each subcommand declares its
// options; anything else is a usage error (exit status 2). Options take their
// value as `--name VALUE` or `--name=VALUE`; `--` ends the options.
#pragma once

#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace tessel::cli {

// A malformed command line: the program prints it with the usage hint and
// exits with status 2.
class usage_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct option {
  std::string_view name;        // without the leading "--"
  std::string_view value_name;  // empty: a flag that takes no value
  std::string_view help;
  bool repeatable = false;
};

struct parsed {
  std::map<std::string, std::vector<std::string>, std::less<>> values;
  std::vector<std::string> positional;

  bool has(std::string_view name) const { return values.find(name) != values.end(); }
  std::optional<std::string> get(std::string_view name) const {
    const auto it = values.find(name);
    if (it == values.end()) return std::nullopt;
    return it->second.back();
  }
  const std::vector<std::string>& all(std::string_view name) const {
    static const std::vector<std::string> none;
    const auto it = values.find(name);
    return it == values.end() ? none : it->second;
  }
};

inline parsed parse(const std::vector<std::string>& args, const std::vector<option>& options,
                    std::size_t max_positional) {
  parsed out;
  bool options_done = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (options_done || arg.size() < 2 || arg.compare(0, 2, "--") != 0) {
      if (!options_done && arg.size() > 1 && arg[0] == '-')
        throw usage_error("unknown option '" + arg + "'");
      if (out.positional.size() == max_positional)
        throw usage_error("unexpected argument '" + arg + "'");
      out.positional.push_back(arg);
      continue;
    }
    if (arg == "--") {
      options_done = true;
      continue;
    }
    const std::size_t eq = arg.find('=');
    const std::string name = arg.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
    const option* spec = nullptr;
    for (const option& o : options)
      if (o.name == name) spec = &o;
    if (!spec) throw usage_error("unknown option '--" + name + "'");
    std::string value;
    if (spec->value_name.empty()) {
      if (eq != std::string::npos) throw usage_error("option '--" + name + "' takes no value");
    } else if (eq != std::string::npos) {
      value = arg.substr(eq + 1);
    } else {
      if (i + 1 == args.size())
        throw usage_error("option '--" + name + "' needs a value (" +
                          std::string(spec->value_name) + ")");
      value = args[++i];
    }
    auto& slot = out.values[name];
    if (!slot.empty() && !spec->repeatable)
      throw usage_error("option '--" + name + "' given more than once");
    slot.push_back(std::move(value));
  }
  return out;
}

// Splits "NAME=VALUE"; a missing '=' or an empty side is a usage error.
inline std::pair<std::string, std::string> split_assignment(std::string_view option_name,
                                                            const std::string& text) {
  const std::size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == text.size())
    throw usage_error("--" + std::string(option_name) + " expects NAME=VALUE, got '" + text + "'");
  return {text.substr(0, eq), text.substr(eq + 1)};
}

// Whether `name` matches `pattern`: a glob with '*' (any run) and '?' (one
// character) over the whole name; a pattern with neither is a substring.
inline bool matches(std::string_view pattern, std::string_view name) {
  if (pattern.find_first_of("*?") == std::string_view::npos)
    return name.find(pattern) != std::string_view::npos;
  std::size_t p = 0, n = 0, star = std::string_view::npos, resume = 0;
  while (n < name.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == name[n])) {
      ++p;
      ++n;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = n;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      n = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

// Minimal JSON text building: strings escaped per RFC 8259.
inline std::string json_string(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          const char* hex = "0123456789abcdef";
          out += "\\u00";
          out += hex[(c >> 4) & 0xF];
          out += hex[c & 0xF];
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

}  // namespace tessel::cli

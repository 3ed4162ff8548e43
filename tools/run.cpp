// `tessel run`: one op of the catalog on .npy inputs. Every name, dtype and
// value is checked before the device is touched, and outputs are written
// only once everything succeeded, so a failed run leaves no file behind.
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "commands.hpp"
#include "compiled_catalog.hpp"
#include "tessel/compare.hpp"
#include "tessel/error.hpp"
#include "tessel/npy.hpp"
#include "tessel/op.hpp"
#include "tessel/vk/context.hpp"

namespace tessel::cli {

namespace {

void print_list(const std::vector<op_entry>& ops) {
  for (const op_entry& op : ops) {
    std::cout << op.name << ": " << op.description << "\n  inputs:\n";
    for (const op_argument& a : op.inputs)
      std::cout << "    " << a.name << "  " << a.kinds_text() << " " << a.shape
                << (a.optional ? "  (optional)" : "")
                << (a.description.empty() ? "" : "  " + a.description) << "\n";
    std::cout << "  params:\n";
    for (const op_parameter& p : op.params) {
      std::ostringstream value;
      if (p.default_value)
        value << "default " << *p.default_value;
      else if (!p.inferred_from.empty())
        value << "default " << p.inferred_from;
      else
        value << "required";
      std::cout << "    " << p.name << "  (" << value.str() << ")  " << p.description << "\n";
    }
    std::cout << "  outputs:\n";
    for (const op_argument& a : op.outputs)
      std::cout << "    " << a.name << "  " << a.kinds_text() << " " << a.shape
                << (a.description.empty() ? "" : "  " + a.description) << "\n";
    std::cout << "  tolerance: |gpu - ref| <= " << op.abs_tolerance << " + " << op.rel_tolerance
              << " * |ref|\n";
    for (const auto& [kind, t] : op.kind_tolerances)
      std::cout << "    " << kind_name(kind) << " outputs: " << t.abs << " + " << t.rel
                << " * |ref|\n";
    if (!op.tolerance_note.empty()) std::cout << "    " << op.tolerance_note << "\n";
    std::cout << "\n";
  }
}

template <class T>
const T* find_named(const std::vector<T>& items, const std::string& name) {
  for (const T& item : items)
    if (item.name == name) return &item;
  return nullptr;
}

template <class T>
std::string names_of(const std::vector<T>& items) {
  std::string out;
  for (const T& item : items) out += (out.empty() ? "" : ", ") + item.name;
  return out.empty() ? "none" : out;
}

double parse_number(const std::string& name, const std::string& text) {
  errno = 0;
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || errno == ERANGE)
    throw usage_error("--param " + name + "=" + text + ": not a number");
  return value;
}

// Assignments NAME=VALUE of one option, each name once.
std::map<std::string, std::string> assignments(const parsed& args, std::string_view option) {
  std::map<std::string, std::string> out;
  for (const std::string& text : args.all(option)) {
    auto [name, value] = split_assignment(option, text);
    if (!out.emplace(name, value).second)
      throw usage_error("--" + std::string(option) + " " + name + " given more than once");
  }
  return out;
}

// Writes every output to a temporary file first and renames them all only
// when every write succeeded.
void write_outputs(const std::map<std::string, std::string>& files, const tensor_map& outputs) {
  std::vector<std::pair<std::filesystem::path, std::filesystem::path>> staged;
  try {
    for (const auto& [name, file] : files) {
      std::filesystem::path temp = file;
      temp += ".partial";
      write_npy(temp, outputs.at(name));
      staged.emplace_back(temp, file);
    }
    for (const auto& [temp, file] : staged) std::filesystem::rename(temp, file);
  } catch (...) {
    std::error_code ignored;
    for (const auto& [temp, file] : staged) std::filesystem::remove(temp, ignored);
    throw;
  }
}

}  // namespace

int run(const parsed& args) {
  const std::vector<op_entry>& ops = tools::ops();
  if (args.has("list")) {
    if (!args.positional.empty() || args.has("in") || args.has("param") || args.has("out") ||
        args.has("check"))
      throw usage_error("--list takes no other argument");
    print_list(ops);
    return 0;
  }
  if (args.positional.empty()) throw usage_error("name an op (`tessel run --list` lists them)");
  const op_entry* op = find_named(ops, args.positional[0]);
  if (!op)
    throw usage_error("unknown op '" + args.positional[0] + "' (ops: " + names_of(ops) + ")");
  const std::string prefix = "op " + op->name + ": ";

  const auto in_files = assignments(args, "in");
  const auto param_texts = assignments(args, "param");
  const auto out_files = assignments(args, "out");
  for (const auto& [name, file] : in_files)
    if (!find_named(op->inputs, name))
      throw usage_error(prefix + "no input named '" + name + "' (inputs: " + names_of(op->inputs) +
                        ")");
  for (const op_argument& a : op->inputs)
    if (!a.optional && !in_files.count(a.name))
      throw usage_error(prefix + "missing input --in " + a.name + "=FILE");
  for (const auto& [name, text] : param_texts)
    if (!find_named(op->params, name))
      throw usage_error(prefix + "no parameter named '" + name +
                        "' (params: " + names_of(op->params) + ")");
  for (const auto& [name, file] : out_files)
    if (!find_named(op->outputs, name))
      throw usage_error(prefix + "no output named '" + name +
                        "' (outputs: " + names_of(op->outputs) + ")");

  for (const auto& [name, file] : out_files) {
    const auto parent = std::filesystem::absolute(file).parent_path();
    if (!std::filesystem::is_directory(parent))
      throw usage_error(prefix + "output " + name + ": directory " + parent.string() +
                        " does not exist");
  }

  parameter_map params;
  for (const op_parameter& p : op->params) {
    const auto given = param_texts.find(p.name);
    if (given != param_texts.end())
      params[p.name] = parse_number(p.name, given->second);
    else if (p.default_value)
      params[p.name] = *p.default_value;
    else if (p.inferred_from.empty())
      throw usage_error(prefix + "missing required parameter --param " + p.name + "=VALUE");
  }

  tensor_map inputs;
  for (const op_argument& a : op->inputs) {
    if (!in_files.count(a.name)) continue;
    const std::string& file = in_files.at(a.name);
    try {
      inputs[a.name] = read_npy(file, {.u16_as_bf16 = a.accepts(scalar_kind::bf16)});
    } catch (const error& e) {
      throw usage_error(prefix + "input " + a.name + ": " + e.what());
    }
    if (!a.accepts(inputs[a.name].kind))
      throw usage_error(prefix + "input " + a.name + " (" + file + ") holds " +
                        std::string(kind_name(inputs[a.name].kind)) + ", the op needs " +
                        a.kinds_text());
  }

  // A check failure after validation is the op's verdict on the input; a
  // Vulkan failure carries a VkResult and is a run-time failure.
  const auto guarded = [&](auto&& call) {
    try {
      return call();
    } catch (const error& e) {
      if (e.vk_result() != 0) throw;
      throw usage_error(e.what());
    }
  };
  reference_map reference;
  if (args.has("check")) reference = guarded([&] { return op->reference(inputs, params); });
  vk::context ctx;
  const tensor_map outputs = guarded([&] { return op->run(ctx, inputs, params); });
  for (const op_argument& a : op->outputs)
    if (!outputs.count(a.name)) throw error(op->name, "the op returned no output '" + a.name + "'");

  int status = 0;
  if (args.has("check")) {
    for (const op_argument& a : op->outputs) {
      const tensor& got = outputs.at(a.name);
      const op_tolerance tolerance = op->tolerance(ctx.target(), inputs, params, got.kind);
      const op_error e = compare(got, reference.at(a.name), tolerance.abs, tolerance.rel);
      const bool ok = within_tolerance(e);
      std::cout << a.name << ": max abs err " << std::setprecision(3) << std::scientific
                << e.max_abs << ", max rel err " << e.max_rel << ", non-finite " << e.non_finite
                << ", out of tolerance " << e.out_of_bound << " -> " << (ok ? "ok" : "FAIL")
                << "\n";
      if (!ok) status = 1;
    }
  }
  write_outputs(out_files, outputs);
  for (const auto& [name, file] : out_files)
    std::cout << "wrote " << name << " " << outputs.at(name).shape_text() << " "
              << kind_name(outputs.at(name).kind) << " to " << file << "\n";
  if (out_files.empty())
    for (const auto& [name, t] : outputs)
      std::cout << name << ": " << t.shape_text() << " " << kind_name(t.kind)
                << " (not written: no --out " << name << "=FILE)\n";
  // The context prints each validation message on stderr as it arrives.
  const auto messages = ctx.validation_messages();
  if (!messages.empty())
    std::cerr << "tessel run: " << messages.size() << " validation message(s)\n";
  return messages.empty() ? status : 1;
}

}  // namespace tessel::cli

// `tessel dump`: the GLSL text of every registered variant for one target,
// and index.json describing each, so the text can be read, diffed and
// compiled with other tools without a GPU.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "commands.hpp"
#include "compiled_catalog.hpp"
#include "device_select.hpp"
#include "tessel/dsl/target.hpp"
#include "tessel/dsl/variant.hpp"
#include "tessel/error.hpp"
#include "tessel/vk/compiler.hpp"
#include "tessel/vk/device.hpp"

namespace tessel::cli {

namespace {

// Variant names are identifiers already; anything else would make a bad path.
std::string file_name(std::string_view variant) {
  std::string out(variant);
  for (char& c : out)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.')) c = '_';
  return out + ".comp";
}

std::string target_json(const target& t) {
  std::string coopmat;
  for (std::uint32_t i = 0; i < t.coopmat_shape_count; ++i) {
    const auto& s = t.coopmat_shapes[i];
    coopmat += std::string(i ? ", " : "") + "[" + std::to_string(s.m) + ", " + std::to_string(s.n) +
               ", " + std::to_string(s.k) + "]";
  }
  return "{\"name\": " + json_string(t.name) +
         ", \"subgroup_size\": " + std::to_string(t.subgroup_size) +
         ", \"push_constant_bytes\": " + std::to_string(t.push_constant_bytes) +
         ", \"shared_memory_bytes\": " + std::to_string(t.shared_memory_bytes) +
         ", \"max_workgroup_invocations\": " + std::to_string(t.max_workgroup_invocations) +
         ", \"coopmat_shapes\": [" + coopmat + "]}";
}

std::string variant_json(const variant_info& v, const target& t, const std::string& file,
                         const std::string& skipped) {
  std::string out = "    {\"name\": " + json_string(v.name);
  if (!skipped.empty()) return out + ", \"skipped\": " + json_string(skipped) + "}";
  const extent3 wg = v.workgroup(t);
  out += ", \"file\": " + json_string(file) + ", \"workgroup\": [" + std::to_string(wg.x) + ", " +
         std::to_string(wg.y) + ", " + std::to_string(wg.z) + "]" +
         ", \"shared_bytes\": " + std::to_string(v.shared_bytes(t)) +
         ", \"features\": " + json_string(vk::feature_names(v.features(t)));
  if (v.params) {
    const params_placement p = v.placement(t);
    out += ", \"params\": {\"name\": " + json_string(v.params->name) +
           ", \"size\": " + std::to_string(v.params->size) +
           ", \"placement\": " + json_string(placement_name(p));
    if (p == params_placement::uniform_buffer)
      out += ", \"binding\": " + std::to_string(v.params_binding());
    out += "}";
  } else {
    out += ", \"params\": null";
  }
  out += ",\n     \"bindings\": [";
  for (std::size_t i = 0; i < v.bindings.size(); ++i)
    out += std::string(i ? ", " : "") + "{\"binding\": " + std::to_string(i) +
           ", \"name\": " + json_string(v.bindings[i].name) +
           ", \"element\": " + json_string(kind_name(v.bindings[i].element)) +
           ", \"access\": " + json_string(access_name(v.bindings[i].mode)) + "}";
  out += "],\n     \"constants\": [";
  for (std::size_t i = 0; i < v.constants.size(); ++i)
    out += std::string(i ? ", " : "") + "{\"name\": " + json_string(v.constants[i].name) +
           ", \"id\": " + std::to_string(v.constants[i].id) +
           ", \"type\": " + json_string(kind_name(v.constants[i].type)) + "}";
  return out + "]}";
}

void write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) throw error("dump", "cannot write " + path.string());
}

}  // namespace

int dump(const parsed& args) {
  const auto target_name = args.get("target");
  const auto out_dir = args.get("out");
  if (!target_name) throw usage_error("--target is required");
  if (!out_dir) throw usage_error("--out is required");
  const std::string pattern = args.get("kernel").value_or("");

  // `device` names the default device's own target, whose name views traits.
  std::optional<vk::device_traits> traits;
  std::optional<target> chosen;
  if (*target_name == "device") {
    traits = default_device_traits();
    chosen = traits->target();
  } else {
    chosen = targets::find(*target_name);
  }
  if (!chosen) {
    std::string names;
    for (const target* t : targets::predefined) names += std::string(t->name) + ", ";
    throw usage_error("unknown target '" + *target_name + "' (valid: " + names + "device)");
  }
  const target& t = *chosen;

  const bool validate = args.has("validate");
  std::string index = "{\n  \"target\": " + target_json(t) + ",\n  \"variants\": [\n";
  std::vector<const variant_info*> selected;
  for (const variant_info* v : tools::variants())
    if (pattern.empty() || matches(pattern, v->name)) selected.push_back(v);
  if (selected.empty()) throw usage_error("no variant name matches '" + pattern + "'");

  const std::filesystem::path dir(*out_dir);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw error("dump", "cannot create " + dir.string() + ": " + ec.message());

  std::size_t written = 0, skipped = 0, failed = 0, listed = 0;
  for (const variant_info* v : selected) {
    std::string skip_reason;
    const feature missing = static_cast<feature>(static_cast<std::uint32_t>(v->features(t)) &
                                                 ~static_cast<std::uint32_t>(t.features));
    if (missing != feature::none)
      skip_reason = "needs " + vk::feature_names(missing) + ", which target " +
                    std::string(t.name) + " does not have";
    else if (!v->fits(t))
      skip_reason = "needs " + std::to_string(v->shared_bytes(t)) + " bytes of shared memory and " +
                    std::to_string(v->workgroup(t).count()) + " invocations; target " +
                    std::string(t.name) + " has " + std::to_string(t.shared_memory_bytes) +
                    " and " + std::to_string(t.max_workgroup_invocations);
    const std::string file = file_name(v->name);
    if (skip_reason.empty()) {
      write_text(dir / file, v->glsl(t));
      ++written;
      if (validate) try {
          vk::compile_variant(*v, t);
        } catch (const error& e) {
          std::cerr << e.what() << "\n";
          ++failed;
        }
    } else {
      std::cerr << "tessel dump: skipping " << v->name << ": " << skip_reason << "\n";
      ++skipped;
    }
    index += std::string(listed++ ? ",\n" : "") + variant_json(*v, t, file, skip_reason);
  }
  index += "\n  ]\n}\n";
  write_text(dir / "index.json", index);
  std::cout << "tessel dump: target " << t.name << ": wrote " << written << " variant(s) to "
            << dir.string() << ", skipped " << skipped;
  if (validate) std::cout << ", " << failed << " failed to compile or validate";
  std::cout << "\n";
  return failed == 0 ? 0 : 1;
}

}  // namespace tessel::cli

// `tessel info`: every Vulkan device with a compute queue and the traits
// tessel reads of it; the default one (TESSEL_DEVICE, else by type) is marked.
#include <iostream>
#include <string>
#include <vector>

#include "commands.hpp"
#include "device_select.hpp"
#include "tessel/vk/device.hpp"

namespace tessel::cli {

namespace {

std::string version_text(std::uint32_t v) {
  return std::to_string(VK_API_VERSION_MAJOR(v)) + "." + std::to_string(VK_API_VERSION_MINOR(v)) +
         "." + std::to_string(VK_API_VERSION_PATCH(v));
}

std::string bytes_text(std::uint64_t n) {
  std::string out = std::to_string(n) + " bytes";
  if (n >= (1ull << 20) && n % (1ull << 20) == 0)
    out += " (" + std::to_string(n >> 20) + " MiB)";
  else if (n >= (1ull << 10) && n % (1ull << 10) == 0)
    out += " (" + std::to_string(n >> 10) + " KiB)";
  return out;
}

}  // namespace

int info(const parsed&) {
  const bare_instance instance;
  const std::vector<vk::device_traits> devices = vk::enumerate_devices(instance.get());
  if (devices.empty()) {
    std::cerr << "tessel info: no Vulkan device with a compute queue was found (is a Vulkan "
                 "driver, e.g. mesa-vulkan-drivers for lavapipe, installed?)\n";
    return 1;
  }
  std::optional<std::size_t> chosen;
  std::string choice_error;
  try {
    chosen = vk::choose_device(devices, device_request());
  } catch (const error& e) {
    choice_error = e.what();
  }
  for (std::size_t i = 0; i < devices.size(); ++i) {
    const vk::device_traits& d = devices[i];
    std::cout << "device " << d.index << ": " << d.name << (chosen == i ? "  [default]" : "")
              << "\n"
              << "  type                      " << d.type << "\n"
              << "  driver                    " << d.driver << "\n"
              << "  Vulkan API                " << version_text(d.api_version) << "\n"
              << "  subgroup size             " << d.subgroup_size << "\n"
              << "  shared memory             " << bytes_text(d.shared_memory_bytes) << "\n"
              << "  push constants            " << bytes_text(d.push_constant_bytes) << "\n"
              << "  max storage buffer range  " << bytes_text(d.max_storage_buffer_range) << "\n"
              << "  max workgroup invocations " << d.max_workgroup_invocations << "\n"
              << "  compute units             "
              << (d.compute_units ? std::to_string(d.compute_units) : "not reported") << "\n"
              << "  cooperative matrix        ";
    if (d.coopmat_shapes.empty()) std::cout << "none";
    for (std::size_t s = 0; s < d.coopmat_shapes.size(); ++s) {
      const coopmat_shape& m = d.coopmat_shapes[s];
      std::cout << (s ? ", " : "") << m.m << "x" << m.n << "x" << m.k << " " << kind_name(m.a)
                << "*" << kind_name(m.b) << "+" << kind_name(m.c) << "->" << kind_name(m.result);
    }
    std::cout << "\n  features                  " << vk::feature_names(d.features) << "\n"
              << "  timestamps                "
              << (d.timestamps ? std::to_string(d.timestamp_period_ns) + " ns per tick" : "no")
              << "\n\n";
  }
  if (!chosen) {
    std::cerr << "tessel info: TESSEL_DEVICE does not name a device: " << choice_error << "\n";
    return 1;
  }
  return 0;
}

}  // namespace tessel::cli

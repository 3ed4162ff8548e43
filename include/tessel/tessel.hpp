// Everything: the description language, the Vulkan layer and the kernels.
#pragma once

#include "tessel/dsl.hpp"
#include "tessel/error.hpp"
#include "tessel/kernels/registry.hpp"
#include "tessel/vk/compiler.hpp"

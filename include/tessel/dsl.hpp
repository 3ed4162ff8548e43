// The description language alone: no Vulkan, no shaderc.
#pragma once

#include "tessel/dsl/description.hpp"
#include "tessel/dsl/emit.hpp"
#include "tessel/dsl/fixed_string.hpp"
#include "tessel/dsl/layout.hpp"
#include "tessel/dsl/scalar.hpp"
#include "tessel/dsl/snippets.hpp"
#include "tessel/dsl/target.hpp"
#include "tessel/dsl/variant.hpp"

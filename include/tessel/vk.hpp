// The thin Vulkan layer of tessel: devices, the context, buffers, pipelines
// and the recorder. Knows nothing about attention.
#pragma once

#include "tessel/vk/buffer.hpp"
#include "tessel/vk/compiler.hpp"
#include "tessel/vk/context.hpp"
#include "tessel/vk/device.hpp"
#include "tessel/vk/memory.hpp"
#include "tessel/vk/pipeline.hpp"
#include "tessel/vk/recorder.hpp"
#include "tessel/vk/result.hpp"
#include "tessel/vk/structure.hpp"

# Finds tessel's dependencies and defines tessel::shaderc. Installed with the
# package so find_package(tessel) resolves them the same way for users.
include_guard(GLOBAL)
include(CMakeFindDependencyMacro)

find_package(Boost 1.74 REQUIRED)
find_package(Vulkan REQUIRED)

# Debian 12's libshaderc.so.1 is under-linked and glslang / SPIRV-Tools exist
# only as static archives, so link the static combination inside one group.
if(NOT TARGET tessel::shaderc)
  set(_tessel_shaderc_libs shaderc_combined glslang MachineIndependent GenericCodeGen OSDependent
      OGLCompiler HLSL SPIRV SPIRV-Tools-opt SPIRV-Tools)
  set(_tessel_shaderc_paths)
  foreach(_lib IN LISTS _tessel_shaderc_libs)
    find_library(TESSEL_${_lib}_LIBRARY NAMES lib${_lib}.a ${_lib})
    if(NOT TESSEL_${_lib}_LIBRARY)
      message(FATAL_ERROR "tessel: lib${_lib}.a not found (Debian: apt-get install libshaderc-dev glslang-dev spirv-tools)")
    endif()
    list(APPEND _tessel_shaderc_paths "${TESSEL_${_lib}_LIBRARY}")
  endforeach()
  find_package(Threads REQUIRED)
  add_library(tessel::shaderc INTERFACE IMPORTED)
  set_target_properties(tessel::shaderc PROPERTIES INTERFACE_LINK_LIBRARIES
    "-Wl,--start-group;${_tessel_shaderc_paths};-Wl,--end-group;Threads::Threads")
endif()

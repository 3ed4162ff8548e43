# `tessel dump` for TARGET_NAME into OUT, then every written .comp compiled
# independently with glslc, so the text stands on its own. (The in-process
# compile and spirv-val of every variant on every target is
# Variants.EveryVariantCompilesAndValidatesOnEveryTargetWithItsFeatures;
# doing it here again cost CI minutes.)
#   cmake -DTESSEL=... -DGLSLC=... -DTARGET_NAME=portable -DOUT=dir -P dump_and_compile.cmake
file(REMOVE_RECURSE "${OUT}")
execute_process(COMMAND "${TESSEL}" dump --target ${TARGET_NAME} --out "${OUT}"
                RESULT_VARIABLE _status)
if(NOT _status EQUAL 0)
  message(FATAL_ERROR "tessel dump exited with ${_status}")
endif()
if(NOT EXISTS "${OUT}/index.json")
  message(FATAL_ERROR "tessel dump wrote no index.json")
endif()
file(GLOB _shaders "${OUT}/*.comp")
if(NOT _shaders)
  message(FATAL_ERROR "tessel dump wrote no .comp file")
endif()
foreach(_shader IN LISTS _shaders)
  execute_process(COMMAND "${GLSLC}" --target-env=vulkan1.3 -c "${_shader}" -o "${_shader}.spv"
                  RESULT_VARIABLE _status ERROR_VARIABLE _err)
  if(NOT _status EQUAL 0)
    message(FATAL_ERROR "glslc failed on ${_shader}:\n${_err}")
  endif()
endforeach()
list(LENGTH _shaders _count)
message(STATUS "${_count} shaders compile with glslc for ${TARGET_NAME}")

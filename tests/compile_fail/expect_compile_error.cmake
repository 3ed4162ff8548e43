# Compiles SOURCE with COMPILER and FLAGS; succeeds only if compilation fails
# and the output matches the regular expression EXPECTED.
execute_process(COMMAND ${COMPILER} ${FLAGS} ${SOURCE}
  RESULT_VARIABLE result OUTPUT_VARIABLE output ERROR_VARIABLE output)
if(result EQUAL 0)
  message(FATAL_ERROR "${SOURCE} compiled, but it must not")
endif()
if(NOT output MATCHES "${EXPECTED}")
  message(FATAL_ERROR "${SOURCE} failed to compile, but the message does not match\n"
    "  ${EXPECTED}\n--- compiler output ---\n${output}")
endif()
message(STATUS "${SOURCE}: rejected as expected")

# Runs COMMAND (a ;-list) and fails unless its exit status is EXPECT; with
# NO_FILES (a ;-list), also fails if any of those paths exists afterwards.
# Used where WILL_FAIL would accept any failure, a crash included.
#   cmake -DCOMMAND=... -DEXPECT=2 [-DNO_FILES=...] -P expect_exit.cmake
foreach(_file IN LISTS NO_FILES)
  file(REMOVE "${_file}")
endforeach()
execute_process(COMMAND ${COMMAND} RESULT_VARIABLE _status OUTPUT_VARIABLE _out
                ERROR_VARIABLE _err)
if(NOT _status STREQUAL "${EXPECT}")
  message(FATAL_ERROR "exit status ${_status}, expected ${EXPECT}\nstdout:\n${_out}\nstderr:\n${_err}")
endif()
foreach(_file IN LISTS NO_FILES)
  if(EXISTS "${_file}")
    message(FATAL_ERROR "${_file} was written although the command failed")
  endif()
  file(GLOB _partial "${_file}*")
  if(_partial)
    message(FATAL_ERROR "left behind: ${_partial}")
  endif()
endforeach()
message(STATUS "exit status ${_status} as expected\n${_err}")

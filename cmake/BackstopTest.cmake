# Test helpers.
#
# backstop_unit_test(src/<layer>/foo_test.cc)
#   Builds foo_test from one GoogleTest source linked with the core and the
#   test seams, and registers each TEST with CTest (label "unit"). The test
#   sees the checkout's path as the macro BACKSTOP_SOURCE_DIR.
#
# backstop_script_test(NAME name SCRIPT tests/foo.sh [LABELS ...] [TIMEOUT s])
#   Registers a black-box test: a bash script that runs the real binaries in a
#   temporary directory. It receives BACKSTOP_BIN, DEMO_SERVICE_BIN,
#   BACKSTOP_SOURCE_DIR and BACKSTOP_BUILD_DIR in its environment.
include(GoogleTest)

function(backstop_unit_test source)
  get_filename_component(name ${source} NAME_WE)
  add_executable(${name} ${source})
  target_link_libraries(${name} PRIVATE backstop_testing ${BACKSTOP_LIBS} GTest::gtest_main)
  # Where the checkout is, for tests that read tests/data/ or examples/.
  target_compile_definitions(${name} PRIVATE BACKSTOP_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
  gtest_discover_tests(${name} PROPERTIES LABELS unit DISCOVERY_TIMEOUT 30)
endfunction()

function(backstop_script_test)
  cmake_parse_arguments(T "" "NAME;SCRIPT;TIMEOUT" "LABELS" ${ARGN})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 600)
  endif()
  add_test(NAME ${T_NAME} COMMAND bash ${CMAKE_SOURCE_DIR}/${T_SCRIPT})
  set_tests_properties(${T_NAME} PROPERTIES
    LABELS "${T_LABELS}"
    TIMEOUT ${T_TIMEOUT}
    ENVIRONMENT "BACKSTOP_BIN=$<TARGET_FILE:backstop>;DEMO_SERVICE_BIN=$<TARGET_FILE:demo-service>;BACKSTOP_SOURCE_DIR=${CMAKE_SOURCE_DIR};BACKSTOP_BUILD_DIR=${CMAKE_BINARY_DIR}")
endfunction()

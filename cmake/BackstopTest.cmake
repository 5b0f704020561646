# Test helpers.
#
# backstop_unit_test(src/<layer>/foo_test.cc)
#   Builds foo_test from one GoogleTest source linked with the core and the
#   test seams, and registers each TEST with CTest (labels "unit" and the
#   layer's folder name, e.g. "unit;watch" for src/watch/, "unit;drivers" for
#   src/drivers/postgres/). The test sees the checkout's path as the macro
#   BACKSTOP_SOURCE_DIR.
#
# backstop_unit_test_targets()
#   After every unit test is declared: the targets unit_tests (every unit
#   test executable) and unit_tests_<layer> (those of one layer), so that a
#   build can make only what `ctest -L unit` or `ctest -L <layer>` runs
#   (scripts/test builds unit_tests under ASan and unit_tests_watch under TSan).
#
# backstop_script_test(NAME name SCRIPT tests/foo.sh [LABELS ...] [TIMEOUT s])
#   Registers a black-box test: a bash script that runs the real binaries in a
#   temporary directory. It receives BACKSTOP_BIN, DEMO_SERVICE_BIN,
#   BACKSTOP_SOURCE_DIR and BACKSTOP_BUILD_DIR in its environment.
include(GoogleTest)

function(backstop_unit_test source)
  get_filename_component(name ${source} NAME_WE)
  get_filename_component(path ${source} ABSOLUTE)
  file(RELATIVE_PATH path ${CMAKE_SOURCE_DIR}/src ${path})
  string(REGEX REPLACE "/.*" "" layer ${path})
  add_executable(${name} ${source})
  target_link_libraries(${name} PRIVATE backstop_testing ${BACKSTOP_LIBS} GTest::gtest_main)
  # Where the checkout is, for tests that read tests/data/ or examples/.
  target_compile_definitions(${name} PRIVATE BACKSTOP_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
  gtest_discover_tests(${name} PROPERTIES LABELS unit DISCOVERY_TIMEOUT 30)
  # gtest_discover_tests flattens a list in PROPERTIES (LABELS unit watch would
  # make "watch" a property name), so the two labels are set by a file that
  # CTest reads after the discovered tests, over the list they are in.
  set(labels_file ${CMAKE_CURRENT_BINARY_DIR}/${name}_labels.cmake)
  file(WRITE ${labels_file} "if(${name}_TESTS)\n"
    "  set_tests_properties(\${${name}_TESTS} PROPERTIES LABELS \"unit;${layer}\")\n"
    "endif()\n")
  set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES ${labels_file})
  set_property(GLOBAL APPEND PROPERTY BACKSTOP_UNIT_TEST_LAYERS ${layer})
  set_property(GLOBAL APPEND PROPERTY BACKSTOP_UNIT_TESTS_${layer} ${name})
endfunction()

function(backstop_unit_test_targets)
  add_custom_target(unit_tests)
  get_property(layers GLOBAL PROPERTY BACKSTOP_UNIT_TEST_LAYERS)
  list(REMOVE_DUPLICATES layers)
  foreach(layer ${layers})
    get_property(tests GLOBAL PROPERTY BACKSTOP_UNIT_TESTS_${layer})
    add_custom_target(unit_tests_${layer})
    add_dependencies(unit_tests_${layer} ${tests})
    add_dependencies(unit_tests unit_tests_${layer})
  endforeach()
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

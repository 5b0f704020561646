# Warnings for every target of Backstop.
#
# BACKSTOP_WERROR (OFF by default, ON in scripts/test and so in CI) turns every
# warning into an error, so that a warning cannot land. It is off for users:
# a newer compiler than CI's (GCC 12) may warn about code that is correct, and
# that must not stop someone from building a release.
add_compile_options(-Wall -Wextra -Wno-unused-parameter)

option(BACKSTOP_WERROR "Treat compiler warnings as errors (CI)" OFF)
if(BACKSTOP_WERROR)
  add_compile_options(-Werror)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    # GCC 12 reports -Wmaybe-uninitialized inside std::variant<int, Status>
    # (Result<int>) when it inlines the variant's move through optimised code:
    # the member it names is never read before being written. It stays a
    # warning, shown but not fatal; every other warning is an error.
    add_compile_options(-Wno-error=maybe-uninitialized)
  endif()
endif()

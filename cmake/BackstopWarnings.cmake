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
    # GCC 12's -Wmaybe-uninitialized has false positives inside the standard
    # library when it inlines through optimised code: in std::variant<int,
    # Status> (Result<int>) moves, and in std::regex's NFA states (_StateT's
    # std::function, e.g. src/run/prune.cc at -O1 under ASan). The members it
    # names are written before they are read. It stays a warning, shown but not
    # fatal, for this one diagnostic only; every other warning is an error.
    add_compile_options(-Wno-error=maybe-uninitialized)
  endif()
endif()

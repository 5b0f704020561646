# Sanitizer builds, used by scripts/test in their own build directories.
#
#   -DBACKSTOP_SANITIZE=address,undefined   AddressSanitizer + UBSan (build-asan)
#   -DBACKSTOP_SANITIZE=thread              ThreadSanitizer (build-tsan)
#
# Every target is compiled and linked with the sanitizers. -O1 keeps the run
# fast enough while the reports stay readable, frame pointers give whole stack
# traces, and -fno-sanitize-recover=all makes the first finding fail the test
# (UBSan would otherwise print and carry on). These flags come after the build
# type's, so -O1 wins over the -O2 of RelWithDebInfo.
set(BACKSTOP_SANITIZE "" CACHE STRING
  "Sanitizers to build with (-fsanitize=...): empty, address,undefined or thread")
if(BACKSTOP_SANITIZE)
  if(BACKSTOP_SANITIZE MATCHES "thread" AND BACKSTOP_SANITIZE MATCHES "address")
    message(FATAL_ERROR "BACKSTOP_SANITIZE: thread cannot be combined with address")
  endif()
  set(BACKSTOP_SANITIZER_FLAGS -fsanitize=${BACKSTOP_SANITIZE} -fno-sanitize-recover=all
    -fno-omit-frame-pointer -O1)
  add_compile_options(${BACKSTOP_SANITIZER_FLAGS})
  add_link_options(-fsanitize=${BACKSTOP_SANITIZE})
endif()

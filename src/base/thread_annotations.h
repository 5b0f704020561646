// Clang's thread-safety annotations, as Abseil and LevelDB define them.
//
// They let the compiler check that shared state is only touched with its
// mutex held: `int count_ GUARDED_BY(mu_);`, `void Flush() REQUIRES(mu_);`.
// Checked by a clang build with -Wthread-safety (the CMake option
// BACKSTOP_THREAD_SAFETY_ANALYSIS); under other compilers they expand to
// nothing. std::mutex carries no capability attribute in libstdc++, so the
// annotated code locks a backstop::Mutex (base/mutex.h).
#pragma once

#if defined(__clang__)
#define BACKSTOP_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define BACKSTOP_THREAD_ANNOTATION(x)  // no-op
#endif

#define CAPABILITY(x) BACKSTOP_THREAD_ANNOTATION(capability(x))
#define SCOPED_CAPABILITY BACKSTOP_THREAD_ANNOTATION(scoped_lockable)
#define GUARDED_BY(x) BACKSTOP_THREAD_ANNOTATION(guarded_by(x))
#define PT_GUARDED_BY(x) BACKSTOP_THREAD_ANNOTATION(pt_guarded_by(x))
#define ACQUIRED_AFTER(...) BACKSTOP_THREAD_ANNOTATION(acquired_after(__VA_ARGS__))
#define ACQUIRED_BEFORE(...) BACKSTOP_THREAD_ANNOTATION(acquired_before(__VA_ARGS__))
#define REQUIRES(...) BACKSTOP_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define REQUIRES_SHARED(...) BACKSTOP_THREAD_ANNOTATION(requires_shared_capability(__VA_ARGS__))
#define ACQUIRE(...) BACKSTOP_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define RELEASE(...) BACKSTOP_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define TRY_ACQUIRE(...) BACKSTOP_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))
#define EXCLUDES(...) BACKSTOP_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define ASSERT_CAPABILITY(x) BACKSTOP_THREAD_ANNOTATION(assert_capability(x))
#define RETURN_CAPABILITY(x) BACKSTOP_THREAD_ANNOTATION(lock_returned(x))
#define NO_THREAD_SAFETY_ANALYSIS BACKSTOP_THREAD_ANNOTATION(no_thread_safety_analysis)

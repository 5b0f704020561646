// When a notification that failed is tried again: exponential backoff with
// jitter, capped, and a last attempt after which it is given up (marked
// failed in the queue and logged).
//
// Thread-safety: plain values and pure functions.
#pragma once

#include <cstdint>

namespace backstop {

struct RetryPolicy {
  int64_t first_delay_ms = 5'000;  // before the second attempt
  int64_t max_delay_ms = 600'000;  // the cap (10 minutes)
  int max_attempts = 8;            // then given up (about 25 minutes after the first)
  // The delay is drawn from [1 - jitter, 1] of the exponential value, so
  // that receivers that came back are not hit by every sender at once.
  double jitter = 0.5;
};

// The delay before attempt `attempts + 1`, after `attempts` (>= 1) failed:
// min(max_delay, first_delay * 2^(attempts - 1)) * (1 - jitter * random01),
// `random01` in [0, 1).
int64_t RetryDelayMs(const RetryPolicy& policy, int attempts, double random01);

// Whether a notification that has failed `attempts` times is given up.
inline bool RetriesExhausted(const RetryPolicy& policy, int attempts) {
  return attempts >= policy.max_attempts;
}

}  // namespace backstop

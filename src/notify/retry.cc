#include "notify/retry.h"

#include <algorithm>

namespace backstop {

int64_t RetryDelayMs(const RetryPolicy& policy, int attempts, double random01) {
  int64_t delay = policy.first_delay_ms;
  for (int i = 1; i < attempts && delay < policy.max_delay_ms; ++i) delay *= 2;
  delay = std::min(delay, policy.max_delay_ms);
  const double r = std::clamp(random01, 0.0, 1.0);
  return static_cast<int64_t>(static_cast<double>(delay) * (1.0 - policy.jitter * r));
}

}  // namespace backstop

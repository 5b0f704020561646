#include "base/exit_code.h"

namespace backstop {

int ExitCodeFor(const Status& status) {
  switch (status.code()) {
    case Status::Code::kOk:
      return kExitOk;
    case Status::Code::kInvalidArgument:
    case Status::Code::kNotFound:
      return kExitInvalid;
    case Status::Code::kAborted:
    case Status::Code::kDataLoss:
    case Status::Code::kCorruption:
      return kExitRefused;
    default:
      return kExitFailed;
  }
}

}  // namespace backstop

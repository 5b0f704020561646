// Loopback ports for servers the tests start (PostgreSQL, nats-server, demo
// services), shared with the shell scripts' pick_port (scripts/lib/ports.sh).
//
// Why not bind(0): the kernel hands out ports from the ephemeral range, the same
// range every outgoing connection uses, so a port found free may be taken by a
// client socket before the server binds it; and two tests running at once may
// be handed the same port between close() and the server's bind(). Ports here
// come from 20000..32767, below Linux's ephemeral range, and each is reserved by
// an atomic mkdir under $TMPDIR/backstop-test-ports/ so concurrent tests (shell
// or C++) never pick the same one. Reservations older than an hour are reclaimed.
//
// Thread-safe.
#pragma once

#include "base/status.h"

namespace backstop::testing {

// A port on 127.0.0.1 that nothing listens on and no other test has reserved.
Result<int> ReserveLoopbackPort();

}  // namespace backstop::testing

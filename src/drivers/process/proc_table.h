// What the process driver reads from the Linux process table (/proc): the
// session of a process, and who serves a service's health port: the sockets
// listening on a loopback port (/proc/net/tcp and tcp6) and the processes
// holding them (/proc/*/fd), so that the health gate can tell the process it
// started from another one answering on the same port (an orphan of an
// earlier start, a process started by hand). Linux only. Every read goes
// through the given FileSystem (the driver's Env), so tests can fake /proc.
//
// Thread-safety: the functions are safe to call from any thread.
#pragma once

#include <sys/types.h>

#include <string>

#include "base/env.h"
#include "spec/spec.h"

namespace backstop::process {

// The session id of `pid` (/proc/<pid>/stat field 6); 0 when it is gone.
pid_t SessionOf(FileSystem* fs, pid_t pid);

// Checks that every socket listening on the loopback port of `probe` (tcp,
// http or grpc on 127.0.0.1, localhost, ::1) is held by a process of session
// `session`: the session the service was started in, whose leader is
// `session` itself. Returns "" when they all are, or when there is nothing to
// check (another kind of probe or host, no listener visible); otherwise a
// message for the operator naming the process that holds the port instead.
std::string ForeignListener(FileSystem* fs, const ProbeSpec& probe, pid_t session,
                            const std::string& service);

// The process holding a socket that listens on loopback `port` (the first
// found), or 0 when none is visible to this user.
pid_t LoopbackListenerPid(FileSystem* fs, int port);

}  // namespace backstop::process

// The nats_outage drill (seed 8, "NATS outage: stop or partition the
// server"): the nats-server of a `nats` component is frozen (SIGSTOP to the
// process listening on its URL's loopback port): connections and the
// monitoring port hang as behind a network partition, while the server keeps
// every stream in memory and on disk, so nothing is lost that the drill could
// not put back. The spec's triggers (health, unreachable, disconnected) detect
// it; the decision matrix decides — for a stream server that cannot be reached
// it holds and alerts unless a service that depends on it changed since the
// restore point (a data restore needs the server; a restart is not Backstop's
// to make). The drill then ends the outage (SIGCONT), and verifies the
// environment back on its restore point, streams included, rolling back to it
// by itself when it is not.
//
// A drill killed while the server is frozen leaves it frozen: the fault line
// names the pid to `kill -CONT`.
//
// Thread-safety: one thread (the drill's).
#pragma once

#include <string>

#include "base/status.h"
#include "drill/drill_faults.h"
#include "spec/spec.h"

namespace backstop {

// OK when `component` is a `nats` stream whose server listens on this machine
// (a loopback URL) and whose reachability a trigger watches.
Status CheckNatsOutageFault(const Spec& spec, const std::string& component);

// Freezes the server of `component`; `fault` records its pid.
// REQUIRES: CheckNatsOutageFault(spec, component) is OK.
Status InjectNatsOutage(Env* env, const Spec& spec, const std::string& component,
                        InjectedFault* fault);

// Lets a frozen server run again (SIGCONT); does nothing when none is.
Status ResumeNatsServer(Env* env, InjectedFault* fault);

}  // namespace backstop

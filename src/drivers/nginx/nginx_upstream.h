// The upstream files the nginx driver routes with (Driver::Route): one file
// <upstreams>/<upstream>.conf per upstream, holding
//   upstream <upstream> { server A; server B; }
// which the user's nginx config includes (`include <upstreams>/*.conf;`).
// Their text is made and read back here; the validated swap is the driver's.
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <vector>

#include "base/status.h"

namespace backstop::nginx {

// OK when `upstream` can name an nginx upstream and a file: letters, digits,
// '_', '-' and '.', not starting with '.'; InvalidArgument saying why otherwise.
Status CheckUpstreamName(const std::string& upstream);

// OK when `servers` is a non-empty list of "host:port" (or "[v6]:port")
// with no character that would end an nginx directive (space, ';', '{',
// '}', quotes, '#', '$'); InvalidArgument naming the first bad one otherwise.
Status CheckUpstreamServers(const std::vector<std::string>& servers);

// The file's text, for `component`. REQUIRES: both checks above passed.
std::string UpstreamConfigText(const std::string& component, const std::string& upstream,
                               const std::vector<std::string>& servers);

// The servers of `upstream` in text written by UpstreamConfigText, in
// order. Corruption when the text is not such a file for `upstream`
// (someone edited it).
Result<std::vector<std::string>> ParseUpstreamConfig(const std::string& upstream,
                                                     const std::string& text);

}  // namespace backstop::nginx

// Upstream files of the nginx driver. See nginx_upstream.h.
#include "drivers/nginx/nginx_upstream.h"

#include <cctype>
#include <sstream>

#include "base/strings.h"

namespace backstop::nginx {

Status CheckUpstreamName(const std::string& upstream) {
  if (upstream.empty() || upstream[0] == '.') {
    return Status::InvalidArgument("upstream name '" + upstream +
                                   "' must be non-empty and must not start with '.'");
  }
  for (char ch : upstream) {
    const auto u = static_cast<unsigned char>(ch);
    if (!std::isalnum(u) && ch != '_' && ch != '-' && ch != '.') {
      return Status::InvalidArgument("upstream name '" + upstream +
                                     "' may hold only letters, digits, '_', '-' and '.'");
    }
  }
  return Status::OK();
}

Status CheckUpstreamServers(const std::vector<std::string>& servers) {
  if (servers.empty()) {
    return Status::InvalidArgument("an upstream needs at least one server (host:port)");
  }
  for (const std::string& server : servers) {
    std::string host, port;
    const bool plain = server.find_first_of(" \t\r\n;{}\"'#$\\") == std::string::npos;
    if (!plain || server.rfind("tcp://", 0) == 0 || !SplitHostPort(server, &host, &port)) {
      return Status::InvalidArgument("upstream server '" + server +
                                     "' is not host:port (such as 127.0.0.1:8080)");
    }
  }
  return Status::OK();
}

std::string UpstreamConfigText(const std::string& component, const std::string& upstream,
                               const std::vector<std::string>& servers) {
  std::string out = "# Written by Backstop for traffic component " + component +
                    "; Backstop replaces this file whenever it routes " + upstream + ".\n";
  out += "upstream " + upstream + " {\n";
  for (const std::string& server : servers) out += "  server " + server + ";\n";
  out += "}\n";
  return out;
}

Result<std::vector<std::string>> ParseUpstreamConfig(const std::string& upstream,
                                                     const std::string& text) {
  std::vector<std::string> servers;
  bool opened = false, closed = false;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    line = Trim(line);
    if (line.empty() || line[0] == '#') continue;
    if (!opened && line == "upstream " + upstream + " {") {
      opened = true;
    } else if (opened && !closed && line == "}") {
      closed = true;
    } else if (opened && !closed && line.rfind("server ", 0) == 0 && line.back() == ';') {
      servers.push_back(Trim(line.substr(7, line.size() - 8)));
    } else {
      return Status::Corruption("unexpected line '" + line + "' in the upstream file of " +
                                upstream + "; Backstop writes these files, do not edit them");
    }
  }
  if (!closed || servers.empty()) {
    return Status::Corruption("the upstream file of " + upstream +
                              " is incomplete; Backstop writes these files, do not edit them");
  }
  return servers;
}

}  // namespace backstop::nginx

// The dashboard's routes: embedded files with their content type and the
// security headers (dashboard.h).
#include "watch/dashboard.h"

#include <httplib.h>

#include <cstring>
#include <string>

namespace backstop {

const DashboardAsset* FindDashboardAsset(std::string_view path) {
  if (path == "/") path = "/index.html";
  size_t count = 0;
  const DashboardAsset* assets = DashboardAssets(&count);
  for (size_t i = 0; i < count; ++i) {
    if (path == assets[i].path) return &assets[i];
  }
  return nullptr;
}

const char* DashboardContentSecurityPolicy() {
  // No 'unsafe-inline' anywhere: the page has no inline script or style
  // attribute; uPlot and Preact set styles through the CSSOM, which a policy
  // does not restrict.
  return "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
         "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
         "frame-ancestors 'none'";
}

void InstallDashboardRoutes(httplib::Server& server) {
  auto serve = [](const httplib::Request& req, httplib::Response& res) {
    res.set_header("Content-Security-Policy", DashboardContentSecurityPolicy());
    res.set_header("X-Content-Type-Options", "nosniff");
    res.set_header("Referrer-Policy", "no-referrer");
    res.set_header("X-Frame-Options", "DENY");
    // The files change with the binary: the browser asks again each time.
    res.set_header("Cache-Control", "no-cache");
    const DashboardAsset* asset = FindDashboardAsset(req.path);
    if (asset == nullptr) {
      res.status = 404;
      res.set_content("no such file: " + req.path + "\n", "text/plain; charset=utf-8");
      return;
    }
    res.set_content(reinterpret_cast<const char*>(asset->data), asset->size, asset->content_type);
  };
  server.Get("/", serve);
  server.Get(R"(/assets/[A-Za-z0-9._/-]+)", serve);
}

}  // namespace backstop

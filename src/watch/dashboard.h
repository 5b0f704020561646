// The web dashboard that `backstop watch` serves beside its API
// (docs/dashboard.md): the page and its scripts and styles, built into the
// binary from web/ by cmake/EmbedFiles.cmake, so nothing is installed next to
// the binary and the page works offline.
//
//   GET /               the page (web/index.html)
//   GET /assets/...     its scripts and styles, the vendored packages among them
//
// Every answer carries a strict Content-Security-Policy (scripts and styles
// from this origin only, no inline script, connections to this origin only,
// no framing). The page reads through the API and acts with the same bearer
// token, sent as a header (never a cookie), so another site cannot act
// through a visitor's browser.
//
// Thread-safety: the assets are constant; everything here may be called from
// any thread.
#pragma once

#include <cstddef>
#include <string_view>

namespace httplib {
class Server;
}

namespace backstop {

struct DashboardAsset {
  const char* path;  // as requested: "/index.html", "/assets/app.js"
  const unsigned char* data;
  size_t size;
  const char* content_type;
};

// Every embedded file (defined in the generated dashboard_assets.cc).
const DashboardAsset* DashboardAssets(size_t* count);
// The asset served at `path` ("/" is the page), or null.
const DashboardAsset* FindDashboardAsset(std::string_view path);
// The Content-Security-Policy every dashboard answer carries.
const char* DashboardContentSecurityPolicy();
// Adds GET / and GET /assets/... to `server`.
void InstallDashboardRoutes(httplib::Server& server);

}  // namespace backstop

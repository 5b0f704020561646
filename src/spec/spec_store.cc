// The store section: where restore points are kept (docs/store.md).
//   store: /var/backstop/store                # a local directory (default <state_dir>/store)
//   store: local                              # the same default, said aloud
//   store:                                    # local, with a copy off the host
//     path: /var/backstop/store
//     replicate_to: {url: s3://bucket/prefix, endpoint: ..., region: ..., key_file: ...}
//   store:                                    # the remote is the store; path is its cache
//     url: s3://bucket/prefix
//     endpoint: http://127.0.0.1:9000
//     region: us-east-1
//     key_file: /etc/backstop/store.key       # or BACKSTOP_STORE_KEY
//     encrypt: true                           # the default; false keeps objects readable
#include <string>
#include <vector>

#include "spec/spec_parser.h"

namespace backstop::spec_internal {

namespace {

const std::vector<std::string> kRemoteKeys = {"url", "endpoint", "region", "key_file", "encrypt"};
const std::vector<std::string> kCredentialKeys = {
    "access_key",        "access_key_id",     "secret_key",
    "secret_access_key", "aws_access_key_id", "aws_secret_access_key",
    "session_token",     "password",          "key"};

bool ValidBucket(std::string_view b) {
  if (b.size() < 3 || b.size() > 63) return false;
  for (char c : b) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.')) return false;
  }
  return true;
}

}  // namespace

void Parser::ParseStore(const Entry& e, Spec* spec) {
  const std::string expected =
      "a directory path, `local`, or a map {path: DIR, replicate_to: {url: ...}} or {url: "
      "s3://bucket/prefix, ...}";
  if (!e.value.IsMap()) {
    auto v = NonEmptyStr(e, "store", expected);
    if (v && *v != "local") spec->store_path = ResolvePath(*v);
    return;
  }
  MapFields f;
  ReadMap(e.value, e.key_mark, "store", expected, &f);
  f.anchor = e.key_mark;
  if (Entry* p = f.Take("path")) {
    if (auto v = NonEmptyStr(*p, "store.path", "a directory path")) {
      spec->store_path = ResolvePath(*v);
    }
  }
  Entry* url = f.Find("url");
  Entry* replica = f.Find("replicate_to");
  if (url != nullptr && replica != nullptr) {
    Err(At(*replica), "store.replicate_to",
        "both `url:` and `replicate_to:`: a store has one remote",
        "`url:` (the remote is the store, the local directory its cache) or `replicate_to:` "
        "(a local store and a copy), not both");
    return;
  }
  if (url != nullptr) {
    ParseRemoteStore(f, e.key_mark, "store", RemoteStoreSpec::Role::kPrimary, spec);
    return;
  }
  if (Entry* r = f.Take("replicate_to")) {
    MapFields rf;
    if (ReadMap(r->value, r->key_mark, "store.replicate_to",
                "a map {url: s3://bucket/prefix, endpoint: ..., region: ..., key_file: ...}",
                &rf)) {
      rf.anchor = r->key_mark;
      ParseRemoteStore(rf, r->key_mark, "store.replicate_to", RemoteStoreSpec::Role::kReplica,
                       spec);
    }
  }
  RejectUnknown(f, {"path", "url", "replicate_to"});
}

void Parser::ParseRemoteStore(MapFields& f, const Mark& anchor, const std::string& path,
                              RemoteStoreSpec::Role role, Spec* spec) {
  RemoteStoreSpec remote;
  remote.role = role;
  remote.pos = Pos(anchor);
  // Secrets in a file that is read by everyone who can run `backstop plan`
  // would be leaked on the first `git add`: refused by name.
  for (const auto& k : kCredentialKeys) {
    if (Entry* c = f.Take(k)) {
      Err(c->key_mark, path + "." + k, "credentials are never written in the spec",
          "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment, or a profile of the "
          "AWS shared credentials file (AWS_PROFILE); the encryption key goes in a file named "
          "by `key_file:`");
    }
  }
  if (Entry* u = f.Take("url")) {
    const std::string expected = "s3://BUCKET[/PREFIX] or file:///ABSOLUTE/PATH";
    if (auto v = NonEmptyStr(*u, path + ".url", expected)) {
      if (v->rfind("s3://", 0) == 0) {
        std::string rest = v->substr(5);
        std::string bucket = rest.substr(0, rest.find('/'));
        if (!ValidBucket(bucket)) {
          Err(At(*u), path + ".url", "'" + bucket + "' is not a bucket name",
              "3 to 63 characters of a-z, 0-9, '-' and '.' after s3://");
        } else {
          remote.url = *v;
        }
      } else if (v->rfind("file://", 0) == 0) {
        std::string dir = v->substr(7);
        if (dir.empty() || dir.front() != '/') {
          Err(At(*u), path + ".url", "'" + *v + "' does not name an absolute directory",
              "file:///ABSOLUTE/PATH (three slashes)");
        } else {
          remote.url = *v;
        }
      } else {
        Err(At(*u), path + ".url", "'" + *v + "' is not a store address", expected);
      }
    }
  } else {
    Err(anchor, path + ".url", "missing required key 'url'", "s3://BUCKET[/PREFIX]");
  }
  if (Entry* ep = f.Take("endpoint")) {
    if (auto v = NonEmptyStr(*ep, path + ".endpoint", "http(s)://HOST[:PORT]")) {
      if (v->rfind("http://", 0) != 0 && v->rfind("https://", 0) != 0) {
        Err(At(*ep), path + ".endpoint", "'" + *v + "' is not an http(s) address",
            "http(s)://HOST[:PORT] of an S3-compatible service");
      } else {
        remote.endpoint = *v;
      }
    }
  }
  if (Entry* rg = f.Take("region")) {
    if (auto v = NonEmptyStr(*rg, path + ".region", "an AWS region name (us-east-1)")) {
      remote.region = *v;
    }
  }
  if (Entry* k = f.Take("key_file")) {
    if (auto v = NonEmptyStr(*k, path + ".key_file", "the path of the store's key file")) {
      remote.key_file = ResolvePath(*v);
    }
  }
  if (Entry* en = f.Take("encrypt")) {
    if (auto v = Bool(*en, path + ".encrypt")) remote.encrypt = *v;
  }
  std::vector<std::string> known = kRemoteKeys;
  if (role == RemoteStoreSpec::Role::kPrimary) known.push_back("path");
  RejectUnknown(f, known);
  if (!remote.url.empty()) spec->remote_store = remote;
}

}  // namespace backstop::spec_internal

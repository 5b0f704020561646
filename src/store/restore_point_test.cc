#include "store/restore_point.h"

#include <unistd.h>

#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <sstream>

#include "base/hash.h"
#include "base/units.h"
#include "testing/test_env.h"

namespace backstop {
namespace {

using testing::FakeClock;
using testing::TempDir;
using testing::WriteFileOrDie;

std::string ReadRaw(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The checksum a manifest edited by hand needs to read as unmodified.
std::string CanonicalOf(nlohmann::json manifest) {
  manifest.erase("checksum");
  return "sha256:" + Sha256Hex(manifest.dump());
}

// 2026-11-26T02:19:47Z and later.
constexpr int64_t kT0 = 1'795'659'587'000'000;
constexpr int64_t kMinute = 60'000'000;

class RestorePointTest : public ::testing::Test {
 protected:
  RestorePointTest() : clock_(1'000'000'000, kT0), env_(testing::MakeEnvWithClock(&clock_)) {
    auto s = Store::Open(&env_, dir_.Join("store"));
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
  }

  std::string PutOrDie(const std::string& data) {
    auto d = store_->Put(data);
    EXPECT_TRUE(d.ok()) << d.status().ToString();
    return d.ok() ? *d : "";
  }

  // A restore point with two components sharing one blob.
  RestorePoint Sample() {
    RestorePoint rp;
    rp.label = "pre-migration";
    rp.environment = "production";
    rp.created_wall_us = kT0;
    std::string conf = PutOrDie("listen 3000;\n");
    std::string dump = PutOrDie("COPY tasks FROM stdin;\n1\tpending\n\\.\n");
    rp.components["nginx"] = {{"kind", "traffic"},
                              {"driver", "nginx"},
                              {"config_hash", "sha256:" + conf},
                              {"blobs", {conf}}};
    rp.components["postgres"] = {{"kind", "database"},
                                 {"driver", "postgres"},
                                 {"position", {{"lsn", "0/16B3748"}, {"rows", {{"tasks", 1}}}}},
                                 {"blobs", {dump, conf}}};
    return rp;
  }

  // Writes a minimal restore point; returns it as written.
  RestorePoint Write(const std::string& id, int64_t when, const std::string& label = "",
                     RestorePointKind kind = RestorePointKind::kManual) {
    RestorePoint rp;
    rp.id = id;
    rp.label = label;
    rp.kind = kind;
    rp.created_wall_us = when;
    rp.components["app"] = {{"release", id}, {"blobs", {PutOrDie("release " + id)}}};
    Status st = WriteRestorePoint(*store_, rp);
    EXPECT_TRUE(st.ok()) << st.ToString();
    return rp;
  }

  std::string Resolve(const std::string& selector, bool include_safety = false) {
    auto rp = ResolveRestorePoint(*store_, selector, include_safety);
    return rp.ok() ? rp->id : rp.status().ToString();
  }

  std::string ManifestPath(const std::string& id) {
    return JoinPath(store_->ManifestDir(), id + ".json");
  }

  TempDir dir_;
  FakeClock clock_;
  Env env_;
  std::unique_ptr<Store> store_;
};

TEST_F(RestorePointTest, NewIdsAreCompactUtcPlusRandomHex) {
  std::string id = NewRestorePointId(kT0);
  EXPECT_TRUE(std::regex_match(id, std::regex("rp-20261126T021947Z-[0-9a-f]{6}"))) << id;
  EXPECT_NE(NewRestorePointId(kT0), NewRestorePointId(kT0));
}

TEST_F(RestorePointTest, WriteAndReadRoundTrip) {
  RestorePoint rp = Sample();
  ASSERT_TRUE(WriteRestorePoint(*store_, rp).ok());
  EXPECT_TRUE(std::regex_match(rp.id, std::regex("rp-20261126T021947Z-[0-9a-f]{6}"))) << rp.id;
  EXPECT_TRUE(std::regex_match(rp.checksum, std::regex("sha256:[0-9a-f]{64}"))) << rp.checksum;
  EXPECT_EQ(rp.checksum, rp.ComputeChecksum());

  auto back = ReadRestorePoint(*store_, rp.id);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->id, rp.id);
  EXPECT_EQ(back->label, "pre-migration");
  EXPECT_EQ(back->kind, RestorePointKind::kManual);
  EXPECT_EQ(back->environment, "production");
  EXPECT_EQ(back->created_wall_us, kT0);
  EXPECT_EQ(back->components, rp.components);
  EXPECT_EQ(back->checksum, rp.checksum);
  EXPECT_EQ(back->AllBlobs(), rp.AllBlobs());
  std::vector<std::string> blobs = rp.AllBlobs();
  EXPECT_EQ(blobs.size(), 2u);  // deduplicated
  EXPECT_TRUE(std::is_sorted(blobs.begin(), blobs.end()));

  // On disk: pretty-printed, with the seed's fields.
  std::string text = ReadRaw(ManifestPath(rp.id));
  EXPECT_NE(text.find("\n  \"checksum\": \"sha256:"), std::string::npos) << text;
  auto j = nlohmann::json::parse(text);
  EXPECT_EQ(j["version"], "pre-migration");
  EXPECT_EQ(j["timestamp"], "2026-11-26T02:19:47Z");
  EXPECT_EQ(j["components"]["postgres"]["position"]["lsn"], "0/16B3748");
  // The checksum covers the canonical dump of everything else.
  nlohmann::json without = j;
  without.erase("checksum");
  EXPECT_EQ(j["checksum"], "sha256:" + Sha256Hex(without.dump()));
}

TEST_F(RestorePointTest, UnlabelledVersionIsTheIdAndTimeComesFromTheClock) {
  RestorePoint rp;
  rp.created_wall_us = 0;
  ASSERT_TRUE(WriteRestorePoint(*store_, rp).ok());
  EXPECT_EQ(rp.created_wall_us, kT0);
  EXPECT_EQ(rp.ToJson()["version"], rp.id);
}

TEST_F(RestorePointTest, ReformattingTheManifestKeepsItValid) {
  RestorePoint rp = Sample();
  ASSERT_TRUE(WriteRestorePoint(*store_, rp).ok());
  auto j = nlohmann::json::parse(ReadRaw(ManifestPath(rp.id)));
  WriteFileOrDie(ManifestPath(rp.id), j.dump(7));
  auto back = ReadRestorePoint(*store_, rp.id);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(VerifyRestorePoint(*store_, *back).ok());
}

TEST_F(RestorePointTest, TamperedManifestIsDetected) {
  RestorePoint rp = Sample();
  ASSERT_TRUE(WriteRestorePoint(*store_, rp).ok());
  EXPECT_TRUE(VerifyRestorePoint(*store_, rp).ok());

  std::string path = ManifestPath(rp.id);
  std::string text = ReadRaw(path);
  size_t at = text.find("\"0/16B3748\"");
  ASSERT_NE(at, std::string::npos);
  text.replace(at, 11, "\"0/16B3749\"");
  WriteFileOrDie(path, text);

  auto strict = ReadRestorePoint(*store_, rp.id);
  EXPECT_EQ(strict.status().code(), Status::Code::kCorruption);
  EXPECT_NE(strict.status().message().find("manifest " + rp.id + " was modified"),
            std::string::npos)
      << strict.status().message();

  auto lenient = ReadRestorePoint(*store_, rp.id, /*check_checksum=*/false);
  ASSERT_TRUE(lenient.ok()) << lenient.status().ToString();
  RestorePointCheck check = VerifyRestorePoint(*store_, *lenient);
  EXPECT_FALSE(check.manifest_ok);
  EXPECT_NE(check.manifest_detail.find("was modified"), std::string::npos) << check.manifest_detail;
  EXPECT_FALSE(check.ok());
  EXPECT_TRUE(check.Failures().empty());  // the blobs themselves are fine

  // Listing reports it; resolving refuses it rather than picking an older one.
  std::vector<std::string> errors;
  auto all = ListRestorePoints(*store_, &errors);
  EXPECT_EQ(all.size(), 1u);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("was modified"), std::string::npos);
  EXPECT_EQ(ResolveRestorePoint(*store_, "latest").status().code(), Status::Code::kCorruption);
  auto id = ResolveRestorePointId(*store_, "latest");
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_EQ(*id, rp.id);

  // A field added by hand is an edit too.
  auto j = nlohmann::json::parse(ReadRaw(path));
  j["components"]["postgres"]["position"]["lsn"] = "0/16B3748";
  ASSERT_TRUE(ReadRestorePoint(*store_, rp.id).ok() == false);
  WriteFileOrDie(path, j.dump(2));
  ASSERT_TRUE(ReadRestorePoint(*store_, rp.id).ok());  // edited back: valid again
  j["injected"] = true;
  WriteFileOrDie(path, j.dump(2));
  EXPECT_EQ(ReadRestorePoint(*store_, rp.id).status().code(), Status::Code::kCorruption);
}

// A kind Backstop never writes is damage, named with the file, not a manual
// restore point; a manifest without a kind (older ones) is a manual one.
TEST_F(RestorePointTest, AnUnknownKindIsCorruptionNamingTheValueAndTheFile) {
  RestorePoint rp = Sample();
  ASSERT_TRUE(WriteRestorePoint(*store_, rp).ok());
  const std::string path = ManifestPath(rp.id);
  auto j = nlohmann::json::parse(ReadRaw(path));

  j["kind"] = "hourly";
  j["checksum"] = CanonicalOf(j);
  WriteFileOrDie(path, j.dump(2));
  auto read = ReadRestorePoint(*store_, rp.id);
  EXPECT_EQ(read.status().code(), Status::Code::kCorruption) << read.status().ToString();
  EXPECT_NE(read.status().message().find("'hourly'"), std::string::npos) << read.status().message();
  EXPECT_NE(read.status().message().find(path), std::string::npos) << read.status().message();
  std::vector<std::string> errors;
  EXPECT_TRUE(ListRestorePoints(*store_, &errors).empty());
  EXPECT_EQ(errors.size(), 1u);

  j.erase("kind");
  j["checksum"] = CanonicalOf(j);
  WriteFileOrDie(path, j.dump(2));
  auto old = ReadRestorePoint(*store_, rp.id);
  ASSERT_TRUE(old.ok()) << old.status().ToString();
  EXPECT_EQ(old->kind, RestorePointKind::kManual);
}

TEST_F(RestorePointTest, VerifyReportsEveryDamagedBlob) {
  RestorePoint rp = Sample();
  ASSERT_TRUE(WriteRestorePoint(*store_, rp).ok());
  std::vector<std::string> blobs = rp.AllBlobs();
  ASSERT_EQ(blobs.size(), 2u);
  ASSERT_TRUE(store_->RemoveBlob(blobs[0]).ok());
  std::string path = store_->BlobPath(blobs[1]);
  std::string raw = ReadRaw(path);
  raw.push_back('x');
  ::chmod(path.c_str(), 0644);
  WriteFileOrDie(path, raw);

  RestorePointCheck check = VerifyRestorePoint(*store_, rp);
  EXPECT_TRUE(check.manifest_ok) << check.manifest_detail;
  EXPECT_FALSE(check.ok());
  ASSERT_EQ(check.blobs.size(), 2u);
  auto failures = check.Failures();
  ASSERT_EQ(failures.size(), 2u);
  EXPECT_EQ(failures[0].digest, blobs[0]);
  EXPECT_EQ(failures[0].state, BlobCheck::State::kMissing);
  EXPECT_EQ(failures[1].digest, blobs[1]);
  EXPECT_EQ(failures[1].state, BlobCheck::State::kCorrupted);
}

TEST_F(RestorePointTest, VerifyNoticesARestorePointThatDiffersFromItsManifest) {
  RestorePoint rp = Sample();
  ASSERT_TRUE(WriteRestorePoint(*store_, rp).ok());
  rp.components["nginx"]["release"] = "edited in memory";
  EXPECT_FALSE(VerifyRestorePoint(*store_, rp).manifest_ok);
  RestorePoint never_written = Sample();
  never_written.id = "rp-never-written";
  RestorePointCheck check = VerifyRestorePoint(*store_, never_written);
  EXPECT_FALSE(check.manifest_ok);
  EXPECT_NE(check.manifest_detail.find("does not exist"), std::string::npos);
}

TEST_F(RestorePointTest, WriteRefusesMissingBlobs) {
  RestorePoint rp = Sample();
  std::string ghost = Sha256Hex("never stored");
  rp.components["orchestrator"] = {{"release", "v2"}, {"blobs", {ghost}}};
  Status st = WriteRestorePoint(*store_, rp);
  EXPECT_EQ(st.code(), Status::Code::kFailedPrecondition) << st.ToString();
  EXPECT_NE(st.message().find(ghost), std::string::npos) << st.message();
  EXPECT_FALSE(Env::Default()->fs()->Exists(ManifestPath(rp.id)));
  EXPECT_TRUE(ListRestorePoints(*store_, nullptr).empty());

  rp.components["orchestrator"]["blobs"] = {"not-a-digest"};
  EXPECT_EQ(WriteRestorePoint(*store_, rp).code(), Status::Code::kInvalidArgument);
}

TEST_F(RestorePointTest, WriteRefusesAnExistingId) {
  RestorePoint first = Write("rp-fixed-000001", kT0, "one");
  std::string before = ReadRaw(ManifestPath(first.id));
  RestorePoint second;
  second.id = first.id;
  second.label = "two";
  second.created_wall_us = kT0 + kMinute;
  Status st = WriteRestorePoint(*store_, second);
  EXPECT_EQ(st.code(), Status::Code::kFailedPrecondition) << st.ToString();
  EXPECT_NE(st.message().find("already exists"), std::string::npos);
  EXPECT_EQ(ReadRaw(ManifestPath(first.id)), before);

  // Also through the primitive that backs it (the race a pre-check cannot close).
  EXPECT_EQ(store_->CreateFileNoReplace(ManifestPath(first.id), "{}").code(),
            Status::Code::kFailedPrecondition);
  EXPECT_EQ(ReadRaw(ManifestPath(first.id)), before);
  EXPECT_TRUE(Env::Default()->fs()->ListDir(store_->TmpDir())->empty());

  RestorePoint bad;
  bad.id = "../escape";
  EXPECT_EQ(WriteRestorePoint(*store_, bad).code(), Status::Code::kInvalidArgument);
}

TEST_F(RestorePointTest, ListIsOrderedAndReportsUnreadableManifests) {
  Write("rp-c", kT0 + 2 * kMinute);
  Write("rp-b", kT0);
  Write("rp-a", kT0);
  WriteFileOrDie(ManifestPath("rp-broken"), "{\"id\": ");
  WriteFileOrDie(ManifestPath("rp-wrong-name"), ReadRaw(ManifestPath("rp-a")));
  // Leftovers of a crash while writing a manifest.
  WriteFileOrDie(JoinPath(store_->TmpDir(), "rp-d.json.1-1.tmp"), "{\"id\": \"rp-d\"");
  WriteFileOrDie(JoinPath(store_->ManifestDir(), ".rp-e.json.tmp"), "{");

  std::vector<std::string> errors;
  auto all = ListRestorePoints(*store_, &errors);
  std::vector<std::string> ids;
  for (const auto& rp : all) ids.push_back(rp.id);
  EXPECT_EQ(ids, (std::vector<std::string>{"rp-a", "rp-b", "rp-c"}));
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_NE(errors[0].find("rp-broken.json is not valid JSON"), std::string::npos) << errors[0];
  EXPECT_NE(errors[1].find("names restore point rp-a, not rp-wrong-name"), std::string::npos)
      << errors[1];
  EXPECT_EQ(Resolve("latest"), "rp-c");
}

// A selector naming a manifest that cannot be read (invalid JSON, a symlink)
// is refused as damaged (Corruption: exit 3), not reported as missing.
TEST_F(RestorePointTest, ASelectorNamingADamagedManifestIsRefusedAsDamaged) {
  Write("rp-good", kT0);
  WriteFileOrDie(ManifestPath("rp-broken"), "{\"id\": ");
  auto broken = ResolveRestorePoint(*store_, "rp-broken");
  ASSERT_FALSE(broken.ok());
  EXPECT_EQ(broken.status().code(), Status::Code::kCorruption) << broken.status().ToString();
  EXPECT_NE(broken.status().message().find("not valid JSON"), std::string::npos);
  EXPECT_EQ(ResolveRestorePoint(*store_, "rp-bro").status().code(), Status::Code::kCorruption);

  std::string elsewhere = JoinPath(store_->TmpDir(), "../elsewhere.json");
  WriteFileOrDie(elsewhere, ReadRaw(ManifestPath("rp-good")));
  ASSERT_EQ(::symlink(elsewhere.c_str(), ManifestPath("rp-linked").c_str()), 0);
  auto linked = ResolveRestorePoint(*store_, "rp-linked");
  ASSERT_FALSE(linked.ok());
  EXPECT_EQ(linked.status().code(), Status::Code::kCorruption) << linked.status().ToString();
  EXPECT_NE(linked.status().message().find("symlink"), std::string::npos);

  EXPECT_EQ(ResolveRestorePoint(*store_, "rp-nothing").status().code(), Status::Code::kNotFound);
}

TEST_F(RestorePointTest, ResolvesSelectors) {
  Write("rp-20261126T021947Z-aaaaaa", kT0, "stable");
  Write("rp-20261126T022047Z-bbbbbb", kT0 + kMinute, "pre-migration");
  Write("rp-20261126T022147Z-cccccc", kT0 + 2 * kMinute, "stable");
  Write("rp-20261126T022247Z-dddddd", kT0 + 3 * kMinute, "", RestorePointKind::kSafety);

  EXPECT_EQ(Resolve("latest"), "rp-20261126T022147Z-cccccc");
  EXPECT_EQ(Resolve("previous"), "rp-20261126T022047Z-bbbbbb");
  EXPECT_EQ(Resolve("latest", /*include_safety=*/true), "rp-20261126T022247Z-dddddd");
  EXPECT_EQ(Resolve("previous", true), "rp-20261126T022147Z-cccccc");
  // Exact ids, safety ones included.
  EXPECT_EQ(Resolve("rp-20261126T021947Z-aaaaaa"), "rp-20261126T021947Z-aaaaaa");
  EXPECT_EQ(Resolve("rp-20261126T022247Z-dddddd"), "rp-20261126T022247Z-dddddd");
  // Unique prefixes.
  EXPECT_EQ(Resolve("rp-20261126T0220"), "rp-20261126T022047Z-bbbbbb");
  // Labels: the newest with that label.
  EXPECT_EQ(Resolve("stable"), "rp-20261126T022147Z-cccccc");
  EXPECT_EQ(Resolve("pre-migration"), "rp-20261126T022047Z-bbbbbb");

  auto ambiguous = ResolveRestorePoint(*store_, "rp-20261126T02");
  EXPECT_EQ(ambiguous.status().code(), Status::Code::kInvalidArgument);
  for (const char* id : {"rp-20261126T021947Z-aaaaaa", "rp-20261126T022047Z-bbbbbb",
                         "rp-20261126T022147Z-cccccc", "rp-20261126T022247Z-dddddd"}) {
    EXPECT_NE(ambiguous.status().message().find(id), std::string::npos)
        << ambiguous.status().message();
  }

  auto unknown = ResolveRestorePoint(*store_, "foo");
  EXPECT_EQ(unknown.status().code(), Status::Code::kNotFound);
  EXPECT_NE(
      unknown.status().message().find("no restore point matches 'foo' (4 exist, the newest is "
                                      "rp-20261126T022247Z-dddddd (safety))"),
      std::string::npos)
      << unknown.status().message();
  EXPECT_NE(unknown.status().message().find("run `backstop snapshots` to list them"),
            std::string::npos);
  // Too short to be taken as a prefix.
  EXPECT_EQ(ResolveRestorePoint(*store_, "rp-20").status().code(), Status::Code::kNotFound);
  EXPECT_EQ(ResolveRestorePoint(*store_, "").status().code(), Status::Code::kInvalidArgument);
}

TEST_F(RestorePointTest, LatestAndPreviousNeedEnoughRestorePoints) {
  auto none = ResolveRestorePoint(*store_, "latest");
  EXPECT_EQ(none.status().code(), Status::Code::kNotFound);
  EXPECT_NE(none.status().message().find("there is none"), std::string::npos);
  Write("rp-only-safety", kT0, "", RestorePointKind::kSafety);
  EXPECT_EQ(ResolveRestorePoint(*store_, "latest").status().code(), Status::Code::kNotFound);
  EXPECT_EQ(Resolve("latest", true), "rp-only-safety");
  Write("rp-one", kT0 + kMinute);
  EXPECT_EQ(Resolve("latest"), "rp-one");
  auto previous = ResolveRestorePoint(*store_, "previous");
  EXPECT_EQ(previous.status().code(), Status::Code::kNotFound);
  EXPECT_NE(previous.status().message().find("there is only rp-one"), std::string::npos)
      << previous.status().message();
  EXPECT_EQ(Resolve("previous", true), "rp-only-safety");
}

}  // namespace
}  // namespace backstop

#include <gtest/gtest.h>

#include "spec/driver_catalog.h"
#include "spec/spec.h"

namespace backstop {
namespace {

constexpr char kBase[] =
    "environment: staging\n"
    "components:\n"
    "  web: {kind: service, driver: process, releases: /r, command: [x]}\n";

// The one driver these specs use, as the parser sees it.
DriverSchemaList Drivers() {
  DriverSchemaList r;
  DriverSchema process{"process", {"service"}, {}, /*supports_slots=*/true};
  SettingSchema releases;
  releases.key = "releases";
  releases.type = SettingSchema::Type::kPath;
  SettingSchema command;
  command.key = "command";
  command.type = SettingSchema::Type::kStringList;
  process.settings = {releases, command};
  r.Add(process);
  return r;
}

std::string Dump(const std::vector<SpecError>& errors) {
  std::string out;
  for (const auto& e : errors) out += e.ToString() + "\n";
  return out;
}

TEST(SpecStoreTest, AStringIsTheLocalDirectoryAndLocalIsTheDefault) {
  auto dir = ParseSpec(std::string(kBase) + "store: /var/backstop/store\n", "/tmp/x/backstop.yaml",
                       Drivers());
  ASSERT_TRUE(dir.ok()) << dir.status().ToString();
  EXPECT_EQ(dir->store_path, "/var/backstop/store");
  EXPECT_FALSE(dir->remote_store.has_value());
  auto local = ParseSpec(std::string(kBase) + "store: local\n", "/tmp/x/backstop.yaml", Drivers());
  ASSERT_TRUE(local.ok());
  EXPECT_EQ(local->store_path, "/tmp/x/.backstop/store");
}

TEST(SpecStoreTest, UrlMakesTheRemoteTheStoreWithTheLocalDirectoryItsCache) {
  auto spec = ParseSpec(std::string(kBase) +
                            "store:\n"
                            "  url: s3://backups/backstop/prod\n"
                            "  endpoint: http://127.0.0.1:9000\n"
                            "  region: eu-west-1\n"
                            "  key_file: keys/store.key\n",
                        "/tmp/x/backstop.yaml", Drivers());
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  ASSERT_TRUE(spec->remote_store.has_value());
  EXPECT_EQ(spec->remote_store->role, RemoteStoreSpec::Role::kPrimary);
  EXPECT_EQ(spec->remote_store->url, "s3://backups/backstop/prod");
  EXPECT_EQ(spec->remote_store->endpoint, "http://127.0.0.1:9000");
  EXPECT_EQ(spec->remote_store->region, "eu-west-1");
  EXPECT_EQ(spec->remote_store->key_file, "/tmp/x/keys/store.key");
  EXPECT_TRUE(spec->remote_store->encrypt);
  EXPECT_EQ(spec->store_path, "/tmp/x/.backstop/store");
  EXPECT_EQ(spec->remote_store->pos.line, 4);
}

TEST(SpecStoreTest, ReplicateToKeepsALocalStoreAndACopy) {
  auto spec =
      ParseSpec(std::string(kBase) +
                    "store:\n"
                    "  path: /srv/store\n"
                    "  replicate_to: {url: 'file:///mnt/offsite/backstop', encrypt: false}\n",
                "/tmp/x/backstop.yaml", Drivers());
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->store_path, "/srv/store");
  ASSERT_TRUE(spec->remote_store.has_value());
  EXPECT_EQ(spec->remote_store->role, RemoteStoreSpec::Role::kReplica);
  EXPECT_EQ(spec->remote_store->url, "file:///mnt/offsite/backstop");
  EXPECT_FALSE(spec->remote_store->encrypt);
}

TEST(SpecStoreTest, CredentialsInTheSpecAreRefusedWhereTheyAre) {
  auto errors = CheckSpecText(std::string(kBase) +
                                  "store:\n"
                                  "  url: s3://backups\n"
                                  "  secret_access_key: hunter2hunter2\n",
                              "spec.yaml", Drivers());
  ASSERT_EQ(errors.size(), 1u) << Dump(errors);
  EXPECT_EQ(errors[0].pos.line, 6);
  EXPECT_EQ(errors[0].pos.column, 3);
  EXPECT_EQ(errors[0].key, "store.secret_access_key");
  EXPECT_NE(errors[0].message.find("credentials are never written in the spec"), std::string::npos);
  EXPECT_EQ(errors[0].ToString().find("hunter2"), std::string::npos);
}

TEST(SpecStoreTest, BadAddressesPointAtTheValue) {
  auto errors = CheckSpecText(std::string(kBase) +
                                  "store:\n"
                                  "  replicate_to:\n"
                                  "    url: s3://Bad_Bucket/x\n"
                                  "    endpoint: 127.0.0.1:9000\n"
                                  "    encrypt: maybe\n"
                                  "    colour: blue\n",
                              "spec.yaml", Drivers());
  ASSERT_EQ(errors.size(), 4u) << Dump(errors);
  EXPECT_EQ(errors[0].ToString(),
            "spec.yaml:6:10: store.replicate_to.url: 'Bad_Bucket' is not a bucket name; expected "
            "3 to 63 characters of a-z, 0-9, '-' and '.' after s3://");
  EXPECT_EQ(errors[1].key, "store.replicate_to.endpoint");
  EXPECT_EQ(errors[1].pos.line, 7);
  EXPECT_EQ(errors[2].key, "store.replicate_to.encrypt");
  EXPECT_EQ(errors[3].key, "store.replicate_to.colour");
}

TEST(SpecStoreTest, UrlAndReplicateToTogetherAreOneRemoteTooMany) {
  auto errors = CheckSpecText(std::string(kBase) +
                                  "store:\n"
                                  "  url: s3://backups\n"
                                  "  replicate_to: {url: s3://other}\n",
                              "spec.yaml", Drivers());
  ASSERT_EQ(errors.size(), 1u) << Dump(errors);
  EXPECT_EQ(errors[0].key, "store.replicate_to");
  EXPECT_NE(errors[0].message.find("a store has one remote"), std::string::npos);
}

TEST(SpecStoreTest, AFileUrlMustBeAbsolute) {
  auto errors = CheckSpecText(std::string(kBase) + "store: {url: 'file://backups'}\n", "spec.yaml",
                              Drivers());
  ASSERT_EQ(errors.size(), 1u) << Dump(errors);
  EXPECT_NE(errors[0].message.find("does not name an absolute directory"), std::string::npos);
}

}  // namespace
}  // namespace backstop

// Tests of the S3 ObjectStore (s3_object_store.h): URL and credential
// parsing, and every operation against a real S3 server (s3rver from npm,
// testing/s3rver.h), directly and through the fault proxy
// (tests/tools/s3-fault-proxy.mjs) for retries and broken uploads.
#include "store/remote/s3_object_store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <thread>

#include "testing/s3rver.h"
#include "testing/test_env.h"

namespace backstop {
namespace {

using testing::S3FaultProxy;
using testing::S3rver;
using testing::TempDir;

constexpr const char* kBucket = "backstop-test";

template <typename T>
T ValueOrDie(Result<T> r) {
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  if (!r.ok()) std::abort();
  return std::move(r).value();
}

// ---- ParseS3Url -----------------------------------------------------------------

TEST(ParseS3UrlTest, BucketAndPrefixWithTheEndpointGiven) {
  auto loc = ValueOrDie(ParseS3Url("s3://backups/prod/api/", "http://127.0.0.1:9000/", ""));
  EXPECT_EQ(loc.bucket, "backups");
  EXPECT_EQ(loc.prefix, "prod/api");
  EXPECT_EQ(loc.endpoint, "http://127.0.0.1:9000");
  EXPECT_EQ(loc.region, "us-east-1");
  EXPECT_EQ(loc.Describe(), "s3://backups/prod/api (http://127.0.0.1:9000)");
}

TEST(ParseS3UrlTest, NoEndpointMeansAwsInTheRegion) {
  auto loc = ValueOrDie(ParseS3Url("s3://my.bucket-1", "", "eu-west-1"));
  EXPECT_EQ(loc.bucket, "my.bucket-1");
  EXPECT_EQ(loc.prefix, "");
  EXPECT_EQ(loc.region, "eu-west-1");
  EXPECT_EQ(loc.endpoint, "https://s3.eu-west-1.amazonaws.com");
  EXPECT_EQ(ValueOrDie(ParseS3Url("s3://abc/", "", "")).endpoint,
            "https://s3.us-east-1.amazonaws.com");
}

TEST(ParseS3UrlTest, MissingBucketIsInvalidArgument) {
  auto r = ParseS3Url("s3:///prefix");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(r.status().message(),
            "S3 URL \"s3:///prefix\" names no bucket (s3://bucket/optional/prefix)");
  EXPECT_EQ(ParseS3Url("s3://").status().code(), Status::Code::kInvalidArgument);
}

TEST(ParseS3UrlTest, BadBucketPrefixSchemeOrEndpointIsInvalidArgument) {
  for (const char* url : {"s3://Upper", "s3://ab", "s3://under_score", "s3://-dash", "s3://a..b",
                          "s3://ok-bucket/with space", "s3://ok-bucket/a/../b",
                          "s3://ok-bucket/a//b", "https://ok-bucket/p", "ok-bucket"}) {
    auto r = ParseS3Url(url);
    EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument) << url;
    EXPECT_NE(r.status().message().find(url), std::string::npos) << r.status().message();
  }
  EXPECT_EQ(ParseS3Url("s3://Upper").status().message(),
            "S3 URL \"s3://Upper\" has a bucket name S3 does not allow: \"Upper\" (3 to 63 of a-z "
            "0-9 . -, starting and ending with a letter or digit)");
  EXPECT_EQ(ParseS3Url("s3://ok-bucket", "ftp://host").status().message(),
            "S3 endpoint \"ftp://host\" does not start with http:// or https://");
}

// ---- LoadS3Credentials ---------------------------------------------------------------

TEST(LoadS3CredentialsTest, EnvironmentComesFirst) {
  TempDir dir;
  testing::WriteFileOrDie(dir.Join("credentials"),
                          "[default]\naws_access_key_id = FILEKEY\naws_secret_access_key = fs\n");
  auto creds =
      ValueOrDie(LoadS3Credentials({{"AWS_ACCESS_KEY_ID", "AKIAENV"},
                                    {"AWS_SECRET_ACCESS_KEY", "envsecret"},
                                    {"AWS_SESSION_TOKEN", "envtoken"},
                                    {"AWS_SHARED_CREDENTIALS_FILE", dir.Join("credentials")}},
                                   Env::Default()->fs()));
  EXPECT_EQ(creds.access_key_id, "AKIAENV");
  EXPECT_EQ(creds.secret_access_key, "envsecret");
  EXPECT_EQ(creds.session_token, "envtoken");
}

TEST(LoadS3CredentialsTest, SharedFileDefaultAndNamedProfiles) {
  TempDir dir;
  testing::WriteFileOrDie(dir.Join("home/.aws/credentials"),
                          "# comment\n"
                          "[default]\n"
                          "aws_access_key_id = AKIADEFAULT\n"
                          "aws_secret_access_key=default/secret+x\n"
                          "\n"
                          "; another comment\n"
                          "[backup]\n"
                          "AWS_ACCESS_KEY_ID = AKIABACKUP\n"
                          "aws_secret_access_key = backupsecret\n"
                          "aws_session_token = backuptoken\n");
  auto def = ValueOrDie(LoadS3Credentials({{"HOME", dir.Join("home")}}, Env::Default()->fs()));
  EXPECT_EQ(def.access_key_id, "AKIADEFAULT");
  EXPECT_EQ(def.secret_access_key, "default/secret+x");
  EXPECT_EQ(def.session_token, "");
  auto backup = ValueOrDie(LoadS3Credentials(
      {{"HOME", dir.Join("home")}, {"AWS_PROFILE", "backup"}}, Env::Default()->fs()));
  EXPECT_EQ(backup.access_key_id, "AKIABACKUP");
  EXPECT_EQ(backup.secret_access_key, "backupsecret");
  EXPECT_EQ(backup.session_token, "backuptoken");
  // AWS_SHARED_CREDENTIALS_FILE wins over $HOME.
  auto named = ValueOrDie(
      LoadS3Credentials({{"HOME", "/nonexistent"},
                         {"AWS_SHARED_CREDENTIALS_FILE", dir.Join("home/.aws/credentials")},
                         {"AWS_PROFILE", "backup"}},
                        Env::Default()->fs()));
  EXPECT_EQ(named.access_key_id, "AKIABACKUP");
}

TEST(LoadS3CredentialsTest, NoneFoundNamesBothPlacesAndNoSecret) {
  TempDir dir;
  auto missing = LoadS3Credentials({{"HOME", dir.path()}}, Env::Default()->fs());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), Status::Code::kFailedPrecondition);
  EXPECT_EQ(missing.status().message(),
            "no S3 credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set, and the "
            "shared credentials file " +
                dir.Join(".aws/credentials") + " does not exist");

  testing::WriteFileOrDie(dir.Join("creds"),
                          "[default]\naws_access_key_id = AKIA\naws_secret_access_key = hush\n");
  auto no_profile = LoadS3Credentials(
      {{"AWS_SHARED_CREDENTIALS_FILE", dir.Join("creds")}, {"AWS_PROFILE", "other"}},
      Env::Default()->fs());
  EXPECT_EQ(no_profile.status().message(),
            "no S3 credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set, and the "
            "shared credentials file " +
                dir.Join("creds") + " has no profile [other]");

  auto half = LoadS3Credentials({{"AWS_ACCESS_KEY_ID", "AKIA"}}, Env::Default()->fs());
  EXPECT_EQ(half.status().code(), Status::Code::kFailedPrecondition);
  EXPECT_EQ(half.status().message(),
            "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not: set both (or neither, to "
            "use the shared credentials file)");
  auto half_secret = LoadS3Credentials({{"AWS_SECRET_ACCESS_KEY", "hush"}}, Env::Default()->fs());
  EXPECT_EQ(half_secret.status().message().find("hush"), std::string::npos);
}

// ---- Against s3rver -------------------------------------------------------------------

class S3ObjectStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = S3rver::Start(kBucket, BACKSTOP_SOURCE_DIR);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(*server);
    options_.max_attempts = 3;
    options_.first_backoff_ms = 10;
    options_.timeout_s = 5;
  }

  S3Location Location(const std::string& prefix = "backstop/prod") const {
    S3Location loc;
    loc.bucket = kBucket;
    loc.prefix = prefix;
    loc.endpoint = server_->endpoint();
    return loc;
  }
  static S3Credentials Credentials() {
    return {S3rver::kAccessKeyId, S3rver::kSecretAccessKey, ""};
  }
  std::unique_ptr<S3ObjectStore> OpenStore(const std::string& prefix = "backstop/prod") {
    return ValueOrDie(S3ObjectStore::Open(Location(prefix), Credentials(), options_));
  }

  std::unique_ptr<S3rver> server_;
  S3Options options_;
  TempDir dir_;
};

TEST_F(S3ObjectStoreTest, PutThenGetReturnsTheSameBytes) {
  auto store = OpenStore();
  std::string data = testing::RandomBytes(100'000, 1);
  data[7] = '\0';
  ASSERT_TRUE(store->Put("blobs/ab/ab12", data).ok());
  EXPECT_EQ(ValueOrDie(store->Get("blobs/ab/ab12")), data);
  ASSERT_TRUE(store->Put("empty", "").ok());
  EXPECT_EQ(ValueOrDie(store->Get("empty")), "");
  EXPECT_EQ(ValueOrDie(store->Size("empty")), 0u);
}

TEST_F(S3ObjectStoreTest, PutReplacesTheOldObject) {
  auto store = OpenStore();
  ASSERT_TRUE(store->Put("restore-points/rp-1", "first version").ok());
  ASSERT_TRUE(store->Put("restore-points/rp-1", "second").ok());
  EXPECT_EQ(ValueOrDie(store->Get("restore-points/rp-1")), "second");
  EXPECT_EQ(ValueOrDie(store->Size("restore-points/rp-1")), 6u);
}

TEST_F(S3ObjectStoreTest, MissingKeyIsNotFoundForGetSizeAndGetToFile) {
  auto store = OpenStore();
  auto got = store->Get("nope/missing");
  EXPECT_EQ(got.status().code(), Status::Code::kNotFound) << got.status().ToString();
  EXPECT_NE(got.status().message().find("nope/missing"), std::string::npos);
  auto size = store->Size("nope/missing");
  EXPECT_EQ(size.status().code(), Status::Code::kNotFound) << size.status().ToString();
  EXPECT_EQ(size.status().message(), "size of nope/missing at s3://backstop-test/backstop/prod (" +
                                         server_->endpoint() + "): no such object");
  Status st = store->GetToFile("nope/missing", dir_.Join("out"));
  EXPECT_EQ(st.code(), Status::Code::kNotFound) << st.ToString();
  EXPECT_EQ(ValueOrDie(Env::Default()->fs()->ListDir(dir_.path())), std::vector<std::string>{});
}

TEST_F(S3ObjectStoreTest, SizeIsTheStoredLength) {
  auto store = OpenStore();
  ASSERT_TRUE(store->Put("a/b/c", std::string(12345, 'x')).ok());
  EXPECT_EQ(ValueOrDie(store->Size("a/b/c")), 12345u);
}

TEST_F(S3ObjectStoreTest, ListReadsEveryPageSortedAndRelativeToThePrefix) {
  options_.list_page_size = 10;
  auto store = OpenStore();
  auto other = OpenStore("backstop/staging");  // a neighbour prefix: never listed
  ASSERT_TRUE(other->Put("blobs/zz", "other").ok());
  std::vector<std::string> expected;
  for (int i = 24; i >= 0; --i) {
    char key[32];
    std::snprintf(key, sizeof(key), "blobs/%02d", i);
    ASSERT_TRUE(store->Put(key, std::string(static_cast<size_t>(i), 'b')).ok());
    expected.insert(expected.begin(), key);
  }
  ASSERT_TRUE(store->Put("restore-points/rp-1", "m").ok());
  auto all = ValueOrDie(store->List(""));
  ASSERT_EQ(all.size(), 26u);
  for (size_t i = 0; i < 25; ++i) {
    EXPECT_EQ(all[i].key, expected[i]);
    EXPECT_EQ(all[i].size, i);
  }
  EXPECT_EQ(all[25].key, "restore-points/rp-1");
  EXPECT_EQ(all[25].size, 1u);

  auto blobs = ValueOrDie(store->List("blobs/"));
  EXPECT_EQ(blobs.size(), 25u);
  auto ones = ValueOrDie(store->List("blobs/1"));
  ASSERT_EQ(ones.size(), 10u);
  EXPECT_EQ(ones.front().key, "blobs/10");
  EXPECT_EQ(ones.back().key, "blobs/19");
  EXPECT_EQ(ValueOrDie(store->List("restore-points/")).size(), 1u);
  EXPECT_EQ(ValueOrDie(store->List("nothing-here/")).size(), 0u);
  EXPECT_EQ(store->List("../x").status().code(), Status::Code::kInvalidArgument);
}

TEST_F(S3ObjectStoreTest, ListOfAStoreWithoutPrefixSeesTheWholeBucket) {
  auto store = OpenStore("");
  ASSERT_TRUE(store->Put("top", "1").ok());
  ASSERT_TRUE(OpenStore("deep/er")->Put("k", "22").ok());
  auto all = ValueOrDie(store->List(""));
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].key, "deep/er/k");
  EXPECT_EQ(all[0].size, 2u);
  EXPECT_EQ(all[1].key, "top");
}

TEST_F(S3ObjectStoreTest, DeleteRemovesAndAMissingKeyIsOk) {
  auto store = OpenStore();
  ASSERT_TRUE(store->Put("gone/soon", "x").ok());
  ASSERT_TRUE(store->Delete("gone/soon").ok());
  EXPECT_EQ(store->Size("gone/soon").status().code(), Status::Code::kNotFound);
  Status again = store->Delete("gone/soon");
  EXPECT_TRUE(again.ok()) << again.ToString();
}

TEST_F(S3ObjectStoreTest, BadKeysAreRefusedBeforeAnyRequest) {
  auto store = OpenStore();
  EXPECT_EQ(store->Put("/abs", "x").code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(store->Get("a/../b").status().code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(store->Delete("sp ace").code(), Status::Code::kInvalidArgument);
}

TEST_F(S3ObjectStoreTest, PutFileAndGetToFileAboveTheThresholdAreByteIdentical) {
  options_.multipart_threshold = 5ull << 20;
  options_.part_size = 5ull << 20;
  auto store = OpenStore();
  std::string data = testing::RandomBytes((12ull << 20) + 123, 7);  // 3 parts: 5, 5, 2 MiB
  testing::WriteFileOrDie(dir_.Join("big.in"), data);
  ASSERT_TRUE(store->PutFile("blobs/big", dir_.Join("big.in")).ok());
  EXPECT_EQ(ValueOrDie(store->Size("blobs/big")), data.size());

  // GetToFile replaces an existing file, 0600, and leaves no partial behind.
  testing::WriteFileOrDie(dir_.Join("big.out"), "old content", 0644);
  Status st = store->GetToFile("blobs/big", dir_.Join("big.out"));
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_TRUE(ValueOrDie(Env::Default()->fs()->ReadFile(dir_.Join("big.out"))) == data);
  EXPECT_EQ(ValueOrDie(Env::Default()->fs()->Stat(dir_.Join("big.out"))).mode, 0600u);
  EXPECT_EQ(ValueOrDie(Env::Default()->fs()->ListDir(dir_.path())),
            (std::vector<std::string>{"big.in", "big.out"}));
}

TEST_F(S3ObjectStoreTest, PutFileBelowTheThresholdIsOnePut) {
  auto store = OpenStore();
  std::string data = testing::RandomBytes(300'000, 3);
  testing::WriteFileOrDie(dir_.Join("small"), data);
  ASSERT_TRUE(store->PutFile("blobs/small", dir_.Join("small")).ok());
  EXPECT_TRUE(ValueOrDie(store->Get("blobs/small")) == data);
  EXPECT_EQ(store->PutFile("blobs/x", dir_.Join("missing")).code(), Status::Code::kNotFound);
}

TEST_F(S3ObjectStoreTest, UnknownAccessKeyIsFailedPreconditionAndNeverShowsTheSecret) {
  S3Credentials creds{"NOT-A-KEY", "very-secret-value-123", "session-token-456"};
  auto store = ValueOrDie(S3ObjectStore::Open(Location(), creds, options_));
  Status put = store->Put("k", "v");
  EXPECT_EQ(put.code(), Status::Code::kFailedPrecondition) << put.ToString();
  EXPECT_EQ(put.message(),
            "access denied to s3://backstop-test/backstop/prod (" + server_->endpoint() +
                ") (put k: HTTP 403 InvalidAccessKeyId: The AWS Access Key Id you provided does "
                "not exist in our records.): check the credentials");
  auto got = store->Get("k");
  auto listed = store->List("");
  for (const Status* st : std::vector<const Status*>{&put, &got.status(), &listed.status()}) {
    EXPECT_EQ(st->code(), Status::Code::kFailedPrecondition);
    EXPECT_EQ(st->message().find("very-secret-value-123"), std::string::npos) << st->message();
    EXPECT_EQ(st->message().find("session-token-456"), std::string::npos) << st->message();
  }
  EXPECT_EQ(store->Describe().find("very-secret"), std::string::npos);
}

TEST_F(S3ObjectStoreTest, MissingBucketIsFailedPreconditionNamingIt) {
  S3Location loc = Location();
  loc.bucket = "no-such-bucket";
  auto store = ValueOrDie(S3ObjectStore::Open(loc, Credentials(), options_));
  Status put = store->Put("k", "v");
  EXPECT_EQ(put.code(), Status::Code::kFailedPrecondition) << put.ToString();
  EXPECT_EQ(put.message(),
            "bucket \"no-such-bucket\" does not exist at " + server_->endpoint() + " (put)");
  EXPECT_EQ(store->Get("k").status().code(), Status::Code::kFailedPrecondition);
  auto size = store->Size("k");  // a HEAD: no body to say which is missing
  EXPECT_EQ(size.status().code(), Status::Code::kFailedPrecondition) << size.status().ToString();
  EXPECT_EQ(size.status().message(),
            "bucket \"no-such-bucket\" does not exist at " + server_->endpoint());
  EXPECT_EQ(store->List("").status().code(), Status::Code::kFailedPrecondition);
  EXPECT_EQ(store->Delete("k").code(), Status::Code::kFailedPrecondition);
}

TEST_F(S3ObjectStoreTest, StoppedServerIsUnavailableAfterTheRetries) {
  auto store = OpenStore();
  ASSERT_TRUE(store->Put("k", "v").ok());
  ASSERT_TRUE(server_->Stop().ok());
  auto start = std::chrono::steady_clock::now();
  auto got = store->Get("blobs/k1");
  EXPECT_EQ(got.status().code(), Status::Code::kUnavailable) << got.status().ToString();
  const std::string& msg = got.status().message();
  std::string head = "get blobs/k1 at s3://backstop-test/backstop/prod (" + server_->endpoint() +
                     "): no answer after 3 attempts; the last: ";
  EXPECT_EQ(msg.substr(0, head.size()), head) << msg;
  EXPECT_NE(msg.find("onnect"), std::string::npos) << msg;  // "Failed to connect ..."
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  // And it comes back with the server.
  ASSERT_TRUE(server_->Restart().ok());
  EXPECT_EQ(ValueOrDie(store->Get("k")), "v");
}

TEST_F(S3ObjectStoreTest, ConcurrentPutsFromSeveralThreads) {
  auto store = OpenStore();
  std::vector<std::thread> threads;
  std::vector<Status> results(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10 && results[t].ok(); ++i) {
        std::string key = "t" + std::to_string(t) + "/k" + std::to_string(i);
        results[t] = store->Put(key, key);
        if (results[t].ok()) {
          auto got = store->Get(key);
          if (!got.ok())
            results[t] = got.status();
          else if (*got != key)
            results[t] = Status::Corruption(key + " read back as " + *got);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (const auto& st : results) EXPECT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(ValueOrDie(store->List("")).size(), 40u);
}

// ---- Through the fault proxy -----------------------------------------------------------

class S3FaultTest : public S3ObjectStoreTest {
 protected:
  void SetUp() override {
    S3ObjectStoreTest::SetUp();
    if (HasFatalFailure()) return;
    auto proxy = S3FaultProxy::Start(server_->endpoint(), BACKSTOP_SOURCE_DIR);
    ASSERT_TRUE(proxy.ok()) << proxy.status().ToString();
    proxy_ = std::move(*proxy);
  }
  std::unique_ptr<S3ObjectStore> OpenProxied(S3Credentials creds = Credentials()) {
    S3Location loc = Location();
    loc.endpoint = proxy_->endpoint();
    return ValueOrDie(S3ObjectStore::Open(loc, creds, options_));
  }
  std::unique_ptr<S3FaultProxy> proxy_;
};

// s3rver checks no Signature V4: the proxy does, with the secret key, so
// that every request the store makes is proven signed as S3 wants it.
class S3SignatureTest : public S3FaultTest {
 protected:
  void SetUp() override {
    S3ObjectStoreTest::SetUp();
    if (HasFatalFailure()) return;
    auto proxy =
        S3FaultProxy::Start(server_->endpoint(), BACKSTOP_SOURCE_DIR, S3rver::kSecretAccessKey);
    ASSERT_TRUE(proxy.ok()) << proxy.status().ToString();
    proxy_ = std::move(*proxy);
  }
};

TEST_F(S3SignatureTest, EveryOperationIsSignedAsS3Checks) {
  options_.list_page_size = 2;  // continuation tokens: base64, with + / =
  options_.multipart_threshold = 5ull << 20;
  options_.part_size = 5ull << 20;
  // A session token is signed too (s3rver ignores it).
  auto store = OpenProxied({S3rver::kAccessKeyId, S3rver::kSecretAccessKey, "token/with+chars="});
  for (const char* key : {"blobs/a-1", "blobs/b_2", "blobs/c.3", "restore-points/rp-x", "z"}) {
    ASSERT_TRUE(store->Put(key, key).ok()) << key << "\n" << proxy_->LogTail();
  }
  auto all = store->List("");
  ASSERT_TRUE(all.ok()) << all.status().ToString() << "\n" << proxy_->LogTail();
  ASSERT_EQ(all->size(), 5u);
  EXPECT_EQ((*all)[3].key, "restore-points/rp-x");
  EXPECT_EQ(ValueOrDie(store->List("blobs/")).size(), 3u);
  EXPECT_EQ(ValueOrDie(store->Get("restore-points/rp-x")), "restore-points/rp-x");
  EXPECT_EQ(ValueOrDie(store->Size("blobs/c.3")), 9u);
  std::string data = testing::RandomBytes((11ull << 20) + 5, 12);
  testing::WriteFileOrDie(dir_.Join("big"), data);
  Status st = store->PutFile("blobs/big", dir_.Join("big"));
  ASSERT_TRUE(st.ok()) << st.ToString() << "\n" << proxy_->LogTail();
  ASSERT_TRUE(store->GetToFile("blobs/big", dir_.Join("big.out")).ok());
  EXPECT_TRUE(ValueOrDie(Env::Default()->fs()->ReadFile(dir_.Join("big.out"))) == data);
  ASSERT_TRUE(store->Delete("z").ok());
  EXPECT_EQ(store->Size("z").status().code(), Status::Code::kNotFound);
  EXPECT_EQ(proxy_->LogTail().find("refused"), std::string::npos) << proxy_->LogTail();
}

TEST_F(S3SignatureTest, AWrongSecretIsFailedPreconditionWithoutTheSecret) {
  auto store = OpenProxied({S3rver::kAccessKeyId, "wrong-secret-789", ""});
  Status st = store->Put("k", "v");
  EXPECT_EQ(st.code(), Status::Code::kFailedPrecondition) << st.ToString();
  EXPECT_EQ(st.message(), "access denied to s3://backstop-test/backstop/prod (" +
                              proxy_->endpoint() +
                              ") (put k: HTTP 403 SignatureDoesNotMatch: The request signature we "
                              "calculated does not match the signature you provided.): check the "
                              "credentials");
  auto size = store->Size("k");  // a HEAD: the 403 has no body
  EXPECT_EQ(size.status().code(), Status::Code::kFailedPrecondition) << size.status().ToString();
  EXPECT_EQ(size.status().message().find("wrong-secret-789"), std::string::npos);
}

TEST_F(S3FaultTest, TwoServerErrorsAreRetriedToSuccess) {
  auto store = OpenProxied();
  ASSERT_TRUE(proxy_->SetMode("fail500 2").ok());
  Status st = store->Put("blobs/retried", "content");
  ASSERT_TRUE(st.ok()) << st.ToString() << "\n" << proxy_->LogTail();
  EXPECT_EQ(ValueOrDie(proxy_->RequestCount()), 3);
  EXPECT_EQ(ValueOrDie(OpenStore()->Get("blobs/retried")), "content");
}

TEST_F(S3FaultTest, ServerErrorsBeyondTheAttemptsAreUnavailable) {
  auto store = OpenProxied();
  ASSERT_TRUE(proxy_->SetMode("fail500 3").ok());
  auto got = store->Get("k");
  EXPECT_EQ(got.status().code(), Status::Code::kUnavailable);
  EXPECT_EQ(got.status().message(), "get k at s3://backstop-test/backstop/prod (" +
                                        proxy_->endpoint() +
                                        "): no answer after 3 attempts; the last: HTTP 500 "
                                        "InternalError");
}

// s3rver writes a PUT's body in place as it arrives, so what it keeps of a
// dropped single PUT says nothing about the client (S3 checks the signed
// x-amz-content-sha256 and the length before an object appears): here the
// client must only never take a broken upload for a stored one.
TEST_F(S3FaultTest, ADroppedSinglePutIsUnavailableNeverOk) {
  auto store = OpenProxied();
  ASSERT_TRUE(proxy_->SetMode("drop-mid-upload").ok());  // every PUT
  Status st = store->Put("blobs/new", testing::RandomBytes(1 << 20, 9));
  EXPECT_EQ(st.code(), Status::Code::kUnavailable) << st.ToString();
  EXPECT_NE(st.message().find("put blobs/new at s3://backstop-test/backstop/prod (" +
                              proxy_->endpoint() + "): no answer after 3 attempts; the last: "),
            std::string::npos)
      << st.message();
  EXPECT_EQ(ValueOrDie(proxy_->RequestCount()), 3);
}

// A multipart upload whose part cannot be sent is never completed: the
// object under the key stays the old one, or none.
TEST_F(S3FaultTest, ADroppedMultipartUploadNeverReplacesTheObject) {
  options_.multipart_threshold = 5ull << 20;
  options_.part_size = 5ull << 20;
  auto store = OpenProxied();
  ASSERT_TRUE(store->Put("blobs/big", "old content").ok());
  testing::WriteFileOrDie(dir_.Join("big"), testing::RandomBytes(12ull << 20, 10));
  ASSERT_TRUE(proxy_->SetMode("drop-mid-upload").ok());  // every PUT
  Status st = store->PutFile("blobs/big", dir_.Join("big"));
  EXPECT_EQ(st.code(), Status::Code::kUnavailable) << st.ToString();
  EXPECT_NE(st.message().find("upload part 1 of blobs/big at "), std::string::npos) << st.message();
  // Part 1 was tried (three times by the store; libcurl also resends a
  // request once by itself when the connection it reused dies before any
  // answer), the upload was aborted and never completed.
  std::string log = proxy_->LogTail();
  EXPECT_EQ(log.find("POST /backstop-test/backstop/prod/blobs/big?uploadId="), std::string::npos)
      << log;
  EXPECT_NE(log.find("DELETE /backstop-test/backstop/prod/blobs/big?uploadId="), std::string::npos)
      << log;
  st = store->PutFile("blobs/new", dir_.Join("big"));
  EXPECT_EQ(st.code(), Status::Code::kUnavailable) << st.ToString();
  ASSERT_TRUE(proxy_->SetMode("pass").ok());
  EXPECT_EQ(ValueOrDie(store->Get("blobs/big")), "old content");
  EXPECT_EQ(store->Size("blobs/new").status().code(), Status::Code::kNotFound);
}

TEST_F(S3FaultTest, ADroppedPartIsRetriedAloneNotTheWholeUpload) {
  options_.multipart_threshold = 5ull << 20;
  options_.part_size = 5ull << 20;
  auto store = OpenProxied();
  std::string data = testing::RandomBytes(12ull << 20, 11);
  testing::WriteFileOrDie(dir_.Join("big"), data);
  ASSERT_TRUE(proxy_->SetMode("drop-mid-upload 1").ok());  // the first part's first attempt
  Status st = store->PutFile("blobs/big", dir_.Join("big"));
  ASSERT_TRUE(st.ok()) << st.ToString() << "\n" << proxy_->LogTail();
  // Create, part 1 twice, parts 2 and 3, complete.
  EXPECT_EQ(ValueOrDie(proxy_->RequestCount()), 6);
  EXPECT_TRUE(ValueOrDie(store->Get("blobs/big")) == data);
}

TEST_F(S3FaultTest, AStalledServerTimesOutAndIsUnavailable) {
  options_.timeout_s = 1;
  options_.max_attempts = 2;
  auto store = OpenProxied();
  ASSERT_TRUE(proxy_->SetMode("stall").ok());
  auto start = std::chrono::steady_clock::now();
  auto size = store->Size("k");
  EXPECT_EQ(size.status().code(), Status::Code::kUnavailable) << size.status().ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  EXPECT_EQ(ValueOrDie(proxy_->RequestCount()), 2);
}

}  // namespace
}  // namespace backstop

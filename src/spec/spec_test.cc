// Tests of the spec parser against the sample specs in tests/data/spec/ and
// the shipped examples/mistersmith/backstop.yaml. The drivers are fakes that
// only carry setting schemas, so these tests do not depend on the real ones.
#include "spec/spec.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "base/env.h"
#include "spec/driver_catalog.h"
#include "spec/spec_expect.h"
#include "spec/spec_internal.h"
#include "testing/test_env.h"

namespace backstop {
namespace {

using Type = SettingSchema::Type;

std::string SourceDir() { return BACKSTOP_SOURCE_DIR; }
std::string DataPath(const std::string& name) {
  return JoinPath(SourceDir(), "tests/data/spec/" + name);
}

std::string ReadOrDie(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

SettingSchema Setting(std::string key, Type type, bool required = false,
                      nlohmann::json default_value = nullptr) {
  SettingSchema s;
  s.key = std::move(key);
  s.type = type;
  s.required = required;
  s.default_value = std::move(default_value);
  return s;
}

// Drivers with the settings the example spec uses (see the brief of each
// real driver), as the parser sees drivers: a plain catalogue, no driver code.
DriverSchemaList FakeDrivers() {
  DriverSchemaList r;
  DriverSchema process{"process", {"service"}, {}, /*supports_slots=*/true};
  process.settings = {Setting("releases", Type::kPath, true),
                      Setting("current", Type::kPath),
                      Setting("command", Type::kStringList, true),
                      Setting("env", Type::kStringMap),
                      Setting("stop_timeout", Type::kDuration, false, "10s"),
                      Setting("max_memory", Type::kBytes),
                      Setting("cpu_limit", Type::kPercent),
                      Setting("restart", Type::kBool, false, false),
                      Setting("priority", Type::kInt)};
  r.Add(process);

  DriverSchema files{"files", {"config"}, {}};
  files.settings = {Setting("files", Type::kPathList, true), Setting("reload", Type::kStringList)};
  r.Add(files);

  DriverSchema postgres{"postgres", {"database"}, {}};
  SettingSchema connection = Setting("connection", Type::kString, true);
  connection.help = "a libpq conninfo string";
  SettingSchema integrity = Setting("integrity", Type::kObjectList);
  integrity.fields = {Setting("name", Type::kString, true), Setting("sql", Type::kString, true),
                      Setting("expect", Type::kComparison, false, 0)};
  SettingSchema staged = Setting("staged", Type::kString, false, "auto");
  staged.allowed = {"auto", "always", "never"};
  postgres.settings = {connection, integrity, staged, Setting("baseline_query", Type::kString)};
  r.Add(postgres);

  DriverSchema nats{"nats", {"stream"}, {}};
  nats.settings = {Setting("url", Type::kString, true), Setting("monitor", Type::kString),
                   Setting("streams", Type::kStringList, true)};
  r.Add(nats);

  DriverSchema nginx{"nginx", {"traffic"}, {}};
  nginx.settings = {
      Setting("site", Type::kPath, true),     Setting("main_config", Type::kPath, true),
      Setting("pid_file", Type::kPath, true), Setting("prefix", Type::kPath),
      Setting("error_log", Type::kPath),      Setting("upstreams", Type::kPath)};
  r.Add(nginx);
  return r;
}

std::vector<SpecError> CheckFile(const std::string& name) {
  std::string path = DataPath(name);
  return CheckSpecText(ReadOrDie(path), path, FakeDrivers());
}

std::string Dump(const std::vector<SpecError>& errors) {
  std::string out;
  for (const auto& e : errors) out += e.ToString() + "\n";
  return out;
}

// ---------------------------------------------------------------------------
// The shipped example

class ExampleSpecTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The example reads these; make the test independent of the caller's environment.
    for (const char* var : {"BACKSTOP_ENVIRONMENT",
                            "BACKSTOP_STATE_DIR",
                            "MISTERSMITH_ROOT",
                            "ORCHESTRATOR_PORT",
                            "ORCHESTRATOR_GRPC_PORT",
                            "WEBUI_BLUE_PORT",
                            "WEBUI_GREEN_PORT",
                            "WEBUI_KEEP_PREVIOUS",
                            "WEB_FRONT_PORT",
                            "HEALTH_INTERVAL",
                            "HEALTH_TIMEOUT",
                            "HEALTH_RETRIES",
                            "HEALTH_START_PERIOD",
                            "MAX_DATA_LOSS_ROWS",
                            "MAX_DATA_LOSS_MESSAGES",
                            "PGHOST",
                            "PGPORT",
                            "PGDATABASE",
                            "PGUSER",
                            "NATS_PORT",
                            "NATS_MONITOR_PORT",
                            "POSTGRES_STAGED",
                            "ERROR_RATE_ABOVE",
                            "ERROR_RATE_FOR",
                            "ERROR_RATE_METRIC",
                            "RESPONSE_TIME_FOR"}) {
      unsetenv(var);
    }
  }
  std::string path_ = JoinPath(SourceDir(), "examples/mistersmith/backstop.yaml");
};

TEST_F(ExampleSpecTest, ParsesWithTheSeedsValues) {
  auto spec = ParseSpec(ReadOrDie(path_), path_, FakeDrivers());
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->environment, "production");
  EXPECT_TRUE(spec->requires_confirm);
  EXPECT_EQ(spec->base_dir, Dirname(path_));
  EXPECT_EQ(spec->state_dir, JoinPath(Dirname(path_), ".backstop"));
  EXPECT_EQ(spec->store_path, JoinPath(spec->state_dir, "store"));
  EXPECT_EQ(spec->max_data_loss_rows, 10000u);
  EXPECT_EQ(spec->max_data_loss_messages, 100000u);
  EXPECT_EQ(spec->component_order, (std::vector<std::string>{"config", "web", "postgres", "nats",
                                                             "orchestrator", "webui"}));

  const ComponentSpec* orch = spec->Find("orchestrator");
  ASSERT_NE(orch, nullptr);
  EXPECT_EQ(orch->kind, ComponentKind::kService);
  EXPECT_EQ(orch->driver, "process");
  EXPECT_EQ(orch->depends_on, (std::vector<std::string>{"postgres", "nats", "config"}));
  EXPECT_EQ(orch->settings.at("releases"), "/srv/mistersmith/orchestrator/releases");
  EXPECT_EQ(orch->settings.at("command"), nlohmann::json::array({"bin/orchestrator"}));
  EXPECT_EQ(orch->settings.at("env").at("PORT"), "50051");
  EXPECT_EQ(orch->settings.at("stop_timeout"), 10000);
  EXPECT_EQ(orch->settings.at("env").at("GRPC_PORT"), "50051");
  EXPECT_EQ(orch->health.type, ProbeSpec::Type::kGrpc);
  EXPECT_EQ(orch->health.target, "127.0.0.1:50051");
  EXPECT_EQ(orch->health.interval_ms, 30000);
  EXPECT_EQ(orch->health.timeout_ms, 10000);
  EXPECT_EQ(orch->health.retries, 3);
  EXPECT_EQ(orch->health.start_period_ms, 30000);

  const ComponentSpec* pg = spec->Find("postgres");
  ASSERT_NE(pg, nullptr);
  EXPECT_EQ(pg->settings.at("connection"),
            "host=127.0.0.1 port=5432 dbname=mistersmith user=mistersmith");
  EXPECT_EQ(pg->settings.at("staged"), "auto");
  EXPECT_EQ(pg->settings.at("baseline_query"), "SELECT COUNT(*) FROM tasks");  // seed 4.3
  EXPECT_EQ(spec->performance.samples, 20);
  EXPECT_EQ(spec->performance.max_latency_ms, 1000);  // the seed's "< 1000 ms"
  ASSERT_EQ(pg->settings.at("integrity").size(), 1u);
  EXPECT_EQ(pg->settings.at("integrity")[0].at("expect"), "0");
  EXPECT_NE(pg->settings.at("integrity")[0].at("sql").get<std::string>().find("LEFT JOIN agents"),
            std::string::npos);

  const ComponentSpec* nats = spec->Find("nats");
  ASSERT_NE(nats, nullptr);
  EXPECT_EQ(nats->settings.at("streams"),
            nlohmann::json::array({"MisterSmith-Tasks", "MisterSmith-Results"}));
  // The web UI is blue/green behind nginx, which serves :80 (its site config
  // the `web` component's): each slot on its own port, probed there.
  const ComponentSpec* webui = spec->Find("webui");
  EXPECT_EQ(webui->health.Describe(), "http http://127.0.0.1:{port}/health");
  EXPECT_EQ(webui->settings.at("env").at("PORT"), "{port}");
  ASSERT_TRUE(webui->traffic.has_value());
  EXPECT_EQ(webui->traffic->component, "web");
  EXPECT_EQ(webui->traffic->upstream, "webui");
  EXPECT_EQ(webui->traffic->strategy, TrafficStrategy::kBlueGreen);
  EXPECT_EQ(webui->traffic->ports, (std::array<int, 2>{3001, 3002}));
  EXPECT_EQ(webui->traffic->keep_previous_ms, 600'000);
  EXPECT_EQ(spec->Find("web")->kind, ComponentKind::kTraffic);
  EXPECT_EQ(spec->Find("web")->health.Describe(), "tcp 127.0.0.1:80");
  EXPECT_EQ(spec->Find("config")->settings.at("files")[0], "/srv/mistersmith/config/config.json");

  // The explicit triggers and matrix equal the built-in defaults.
  EXPECT_FALSE(spec->triggers_defaulted);
  EXPECT_FALSE(spec->decision_matrix_defaulted);
  auto defaults = DefaultTriggers();
  ASSERT_EQ(spec->triggers.size(), defaults.size());
  for (size_t i = 0; i < defaults.size(); ++i) {
    SCOPED_TRACE(defaults[i].name);
    EXPECT_EQ(spec->triggers[i].name, defaults[i].name);
    EXPECT_EQ(spec->triggers[i].signal, defaults[i].signal);
    EXPECT_EQ(spec->triggers[i].consecutive, defaults[i].consecutive);
    EXPECT_EQ(spec->triggers[i].above, defaults[i].above);
    EXPECT_EQ(spec->triggers[i].for_ms, defaults[i].for_ms);
    EXPECT_EQ(spec->triggers[i].action, defaults[i].action);
  }
  auto matrix = DefaultDecisionMatrix();
  ASSERT_EQ(spec->decision_matrix.size(), matrix.size());
  for (size_t i = 0; i < matrix.size(); ++i) {
    SCOPED_TRACE(matrix[i].scenario);
    EXPECT_EQ(spec->decision_matrix[i].scenario, matrix[i].scenario);
    EXPECT_EQ(spec->decision_matrix[i].triggers, matrix[i].triggers);
    EXPECT_EQ(spec->decision_matrix[i].scope, matrix[i].scope);
    EXPECT_EQ(spec->decision_matrix[i].recovery_min_ms, matrix[i].recovery_min_ms);
    EXPECT_EQ(spec->decision_matrix[i].recovery_max_ms, matrix[i].recovery_max_ms);
  }
  ASSERT_EQ(spec->drills.size(), 2u);
  EXPECT_EQ(spec->drills[0].schedule, "weekly");
  EXPECT_EQ(spec->drills[0].component, "");
  EXPECT_EQ(spec->drills[1].scenario, "full_system");
  EXPECT_EQ(spec->drills[1].schedule, "monthly");
  ASSERT_EQ(spec->notify.size(), 1u);
  EXPECT_EQ(spec->notify[0].type, "log");
  EXPECT_EQ(spec->notify[0].on.size(), 6u);
}

TEST_F(ExampleSpecTest, TheDemoOverridesPortsPathsAndIntervals) {
  setenv("BACKSTOP_ENVIRONMENT", "demo", 1);
  setenv("MISTERSMITH_ROOT", "/tmp/demo-root", 1);
  setenv("ORCHESTRATOR_PORT", "41001", 1);
  setenv("ORCHESTRATOR_GRPC_PORT", "41002", 1);
  setenv("HEALTH_INTERVAL", "1s", 1);
  setenv("HEALTH_TIMEOUT", "500ms", 1);
  setenv("HEALTH_START_PERIOD", "5s", 1);
  setenv("ERROR_RATE_FOR", "3s", 1);
  auto spec = ParseSpec(ReadOrDie(path_), path_, FakeDrivers());
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->environment, "demo");
  EXPECT_FALSE(spec->requires_confirm);
  const ComponentSpec* orch = spec->Find("orchestrator");
  EXPECT_EQ(orch->settings.at("releases"), "/tmp/demo-root/orchestrator/releases");
  EXPECT_EQ(orch->settings.at("env").at("PORT"), "41001");
  EXPECT_EQ(orch->settings.at("env").at("GRPC_PORT"), "41002");
  EXPECT_EQ(orch->health.target, "127.0.0.1:41002");
  EXPECT_EQ(orch->health.interval_ms, 1000);
  EXPECT_EQ(orch->health.timeout_ms, 500);
  EXPECT_EQ(orch->health.start_period_ms, 5000);
  EXPECT_EQ(spec->triggers[2].name, "error_rate");
  EXPECT_EQ(spec->triggers[2].for_ms, 3000);

  // A shorter interval alone leaves the explicit 10s timeout too long: said, not guessed, once
  // per component that probes (as `backstop check` says it).
  unsetenv("HEALTH_TIMEOUT");
  auto errors = CheckSpecText(ReadOrDie(path_), path_, FakeDrivers());
  ASSERT_EQ(errors.size(), 5u) << Dump(errors);
  EXPECT_EQ(errors[0].key, "components.web.health.timeout");
  EXPECT_NE(errors[0].message.find("timeout 10s exceeds interval 1s"), std::string::npos);
  SetUp();
}

TEST(SpecTest, DefaultTimeoutFollowsAShorterInterval) {
  auto spec = ParseSpec(
      "environment: dev\ncomponents:\n  web:\n    kind: service\n    driver: process\n"
      "    releases: r\n    command: [w]\n    health: {tcp: 'localhost:80', interval: 2s}\n",
      "/tmp/backstop.yaml", FakeDrivers());
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->Find("web")->health.interval_ms, 2000);
  EXPECT_EQ(spec->Find("web")->health.timeout_ms, 2000);
}

TEST_F(ExampleSpecTest, ExampleSpecReturnsTheShippedFile) {
  auto text = ExampleSpec("mistersmith");
  ASSERT_TRUE(text.ok()) << text.status().ToString();
  EXPECT_EQ(*text, ReadOrDie(path_));
  auto missing = ExampleSpec("nosuch");
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(missing.status().IsNotFound());
  EXPECT_NE(missing.status().message().find("mistersmith"), std::string::npos);
}

// ---------------------------------------------------------------------------
// Malformed specs: one file, one error at an exact place.

struct BadCase {
  const char* file;
  int line;
  int column;
  const char* key;
  const char* message;  // a substring of the message
};

class BadSpecTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadSpecTest, ReportsTheErrorWhereItIs) {
  const BadCase& c = GetParam();
  auto errors = CheckFile(std::string("bad/") + c.file);
  ASSERT_EQ(errors.size(), 1u) << Dump(errors);
  const SpecError& e = errors[0];
  EXPECT_EQ(e.pos.file, DataPath(std::string("bad/") + c.file));
  EXPECT_EQ(e.pos.line, c.line) << e.ToString();
  EXPECT_EQ(e.pos.column, c.column) << e.ToString();
  EXPECT_EQ(e.key, c.key) << e.ToString();
  EXPECT_NE(e.message.find(c.message), std::string::npos) << e.ToString();
  EXPECT_NE(e.message.find("expected"), std::string::npos) << e.ToString();
  // ParseSpec refuses the same file with the same line.
  std::string path = DataPath(std::string("bad/") + c.file);
  auto spec = ParseSpec(ReadOrDie(path), path, FakeDrivers());
  ASSERT_FALSE(spec.ok());
  EXPECT_EQ(spec.status().code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(spec.status().message(), e.ToString());
}

INSTANTIATE_TEST_SUITE_P(
    Files, BadSpecTest,
    ::testing::Values(
        BadCase{"syntax_error.yaml", 4, 6, "", "YAML syntax error: end of map flow not found"},
        BadCase{"tab_indent.yaml", 4, 1, "", "tab character in indentation"},
        BadCase{"unknown_top_key.yaml", 4, 1, "notfy",
                "unknown key 'notfy' (did you mean 'notify'?)"},
        BadCase{"unknown_component_key.yaml", 9, 5, "components.web.depend_on",
                "unknown key 'depend_on' (did you mean 'depends_on'?)"},
        BadCase{"missing_kind.yaml", 3, 3, "components.web.kind", "missing required key 'kind'"},
        BadCase{"unknown_kind.yaml", 4, 11, "components.web.kind",
                "unknown kind 'servce' (did you mean 'service'?)"},
        BadCase{"unknown_driver.yaml", 5, 13, "components.web.driver",
                "unknown driver 'procss' (did you mean 'process'?); expected a driver for kind "
                "service: process"},
        BadCase{"driver_wrong_kind.yaml", 5, 13, "components.web.driver",
                "driver 'nats' does not serve kind 'service' (it serves stream)"},
        BadCase{"unknown_dependency.yaml", 9, 22, "components.web.depends_on",
                "unknown component 'dbb' (did you mean 'db'?)"},
        BadCase{"dependency_cycle.yaml", 8, 18, "components.web.depends_on",
                "dependency cycle web -> api -> worker -> web"},
        BadCase{"self_dependency.yaml", 9, 9, "components.web.depends_on",
                "component 'web' depends on itself"},
        BadCase{"bad_duration.yaml", 10, 17, "components.web.health.interval",
                "bad duration '5 minutes'; expected a positive duration"},
        BadCase{"bad_percentage.yaml", 7, 12, "triggers[0].above",
                "bad percentage '105%'; expected a percentage between 0% and 100%"},
        BadCase{"latency_percent.yaml", 5, 42, "triggers[0].above",
                "'5%' is a percentage, but signal 'latency' is measured in time; expected a "
                "duration"},
        BadCase{"duplicate_key.yaml", 7, 5, "components.web.kind",
                "duplicate key (first defined at line 4)"},
        BadCase{"duplicate_component.yaml", 5, 3, "components.web",
                "duplicate key (first defined at line 3)"},
        BadCase{"undefined_variable.yaml", 6, 15, "components.web.releases",
                "environment variable BACKSTOP_SPEC_TEST_UNDEFINED is not set"},
        BadCase{"two_probes.yaml", 10, 7, "components.web.health.tcp",
                "more than one probe type (http and tcp)"},
        BadCase{"missing_setting.yaml", 3, 3, "components.db.connection",
                "missing required setting 'connection'; expected a string (a libpq conninfo"},
        BadCase{"wrong_setting_type.yaml", 7, 14, "components.bus.streams",
                "got a map; expected a list of strings"},
        BadCase{"bad_cron.yaml", 7, 15, "drills[0].schedule",
                "bad cron expression '0 25 * * *': hour field '25' is out of range 0-23"},
        BadCase{"timeout_exceeds_interval.yaml", 8, 76, "components.web.health.timeout",
                "timeout 20s exceeds interval 10s"},
        BadCase{"unknown_matrix_trigger.yaml", 6, 39, "decision_matrix[0].triggers[1]",
                "unknown trigger 'service_unreachble' (did you mean 'service_unreachable'?)"},
        BadCase{"webhook_without_url.yaml", 5, 5, "notify[0].url",
                "missing required key 'url' for a webhook"},
        BadCase{"empty.yaml", 1, 1, "", "the spec is empty"},
        BadCase{"missing_environment.yaml", 1, 1, "environment",
                "missing required key 'environment'"},
        BadCase{"not_allowed_value.yaml", 7, 13, "components.db.staged",
                "'sometimes' is not allowed; expected one of auto, always, never"},
        BadCase{"integrity_item.yaml", 9, 17, "components.db.integrity[0].expect",
                "'zero' is neither a number nor a comparison with one; expected a number such "
                "as 0, or a comparison such as '<= 0'"},
        BadCase{"expect_comparison.yaml", 8, 48, "components.db.integrity[0].expect",
                "'=< 0' is neither a number nor a comparison"},
        BadCase{"unclosed_quote.yaml", 6, 17, "components.db.connection",
                "the value opened by this double quote does not close on its line: it runs to "
                "line 15"},
        BadCase{"empty_command.yaml", 7, 14, "components.web.command",
                "empty list; expected a list of strings"},
        BadCase{"http_port_out_of_range.yaml", 9, 13, "components.web.health.http",
                "port -1 is out of range 1..65535"},
        BadCase{"nats_port_out_of_range.yaml", 6, 10, "components.bus.url",
                "bad URL 'nats://127.0.0.1:99999': port 99999 is out of range 1..65535"},
        BadCase{"conninfo_port_out_of_range.yaml", 6, 17, "components.db.connection",
                "port=65536 is not a port (1..65535); expected a string"},
        BadCase{"negative_integer.yaml", 8, 15, "components.web.priority",
                "-1 is out of range; expected an integer from 0 to 2147483647"},
        BadCase{"unknown_url_scheme.yaml", 6, 10, "components.bus.url",
                "unknown URL scheme 'nast' (did you mean 'nats'?)"}),
    [](const ::testing::TestParamInfo<BadCase>& info) {
      std::string name = info.param.file;
      name = name.substr(0, name.find('.'));
      return name;
    });

TEST(SpecTest, ReportsEveryErrorOfAFile) {
  auto errors = CheckFile("bad/many_errors.yaml");
  std::vector<std::string> got;
  for (const auto& e : errors) {
    got.push_back(std::to_string(e.pos.line) + ":" + std::to_string(e.pos.column) + " " + e.key);
  }
  EXPECT_EQ(got, (std::vector<std::string>{
                     "1:1 environment",                       // missing
                     "1:1 enviroment",                        // unknown (did you mean)
                     "8:18 components.web.depends_on",        // ghost
                     "11:17 components.web.health.interval",  // 5 minutes
                     "12:3 components.db.connection",         // missing setting
                     "13:11 components.db.kind",              // databse
                     "18:12 triggers[0].above",               // 5% for latency
                     "20:11 triggers[1].name",                // duplicate
                     "22:12 triggers[1].above",               // 2s for cpu
                     "23:13 triggers[1].action",              // rollback
                     "27:15 drills[0].schedule",              // minute 61
                 }))
      << Dump(errors);
  std::string path = DataPath("bad/many_errors.yaml");
  auto spec = ParseSpec(ReadOrDie(path), path, FakeDrivers());
  ASSERT_FALSE(spec.ok());
  // One error per line, each starting with file:line:column.
  std::string msg = spec.status().message();
  EXPECT_EQ(static_cast<size_t>(std::count(msg.begin(), msg.end(), '\n')), errors.size() - 1);
  EXPECT_EQ(msg.rfind(path + ":1:1: environment: ", 0), 0u) << msg;
  EXPECT_NE(msg.find("did you mean 'environment'?"), std::string::npos);
  EXPECT_NE(msg.find("\n" + path + ":27:15: drills[0].schedule: bad cron expression"),
            std::string::npos);
}

// ---------------------------------------------------------------------------
// Good specs, settings and defaults

TEST(SpecTest, MinimalSpecGetsEveryDefault) {
  std::string path = DataPath("good/minimal.yaml");
  auto spec = ParseSpec(ReadOrDie(path), path, FakeDrivers());
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->path, path);
  EXPECT_EQ(spec->environment, "staging");
  EXPECT_FALSE(spec->requires_confirm);  // not production
  EXPECT_EQ(spec->state_dir, DataPath("good/.backstop"));
  EXPECT_EQ(spec->store_path, DataPath("good/.backstop/store"));
  EXPECT_EQ(spec->max_data_loss_rows, 0u);
  const ComponentSpec* web = spec->Find("web");
  ASSERT_NE(web, nullptr);
  EXPECT_EQ(spec->Find("nope"), nullptr);
  EXPECT_EQ(web->pos.line, 4);
  EXPECT_EQ(web->pos.column, 3);
  EXPECT_EQ(web->settings.at("releases"), DataPath("good/releases/web"));  // relative -> absolute
  EXPECT_EQ(web->settings.at("stop_timeout"), 10000);  // the schema's default "10s", converted
  EXPECT_EQ(web->settings.at("restart"), false);
  EXPECT_FALSE(web->settings.contains("current"));
  EXPECT_FALSE(web->health.enabled());
  EXPECT_EQ(web->health.Describe(), "none");

  EXPECT_TRUE(spec->triggers_defaulted);
  EXPECT_TRUE(spec->decision_matrix_defaulted);
  EXPECT_EQ(spec->triggers.size(), DefaultTriggers().size());
  EXPECT_EQ(spec->decision_matrix.size(), DefaultDecisionMatrix().size());
  EXPECT_TRUE(spec->drills.empty());
  EXPECT_TRUE(spec->notify.empty());
}

TEST(SpecTest, FullSpecConvertsEverySection) {
  std::string path = DataPath("good/full.yaml");
  auto spec = ParseSpec(ReadOrDie(path), path, FakeDrivers());
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->environment, "production");
  EXPECT_FALSE(spec->requires_confirm);  // protected: false overrides the production default
  EXPECT_EQ(spec->state_dir, DataPath("good/state"));
  EXPECT_EQ(spec->store_path, "/var/backstop/store");
  EXPECT_EQ(spec->max_data_loss_rows, 5u);
  EXPECT_EQ(spec->max_data_loss_messages, 7u);
  EXPECT_EQ(spec->component_order,
            (std::vector<std::string>{"settings", "db", "bus", "api", "lb"}));

  const ComponentSpec& settings = *spec->Find("settings");
  EXPECT_EQ(settings.settings.at("files"), nlohmann::json::array({DataPath("good/conf/app.json")}));

  const ComponentSpec& db = *spec->Find("db");
  EXPECT_EQ(db.settings.at("integrity")[1].at("expect"), 0);  // field default
  EXPECT_EQ(db.settings.at("integrity")[0].at("name"), "orphans");
  EXPECT_EQ(db.health.type, ProbeSpec::Type::kExec);
  EXPECT_EQ(db.health.command, (std::vector<std::string>{"pg_isready", "-q"}));
  EXPECT_EQ(db.health.interval_ms, 5000);
  EXPECT_EQ(db.health.timeout_ms, 2000);
  EXPECT_EQ(db.health.retries, 2);
  EXPECT_EQ(db.health.start_period_ms, 60000);
  EXPECT_EQ(db.health.Describe(), "exec pg_isready -q");

  const ComponentSpec& bus = *spec->Find("bus");
  EXPECT_EQ(bus.settings.at("streams"), nlohmann::json::array({"tasks"}));
  EXPECT_EQ(bus.health.type, ProbeSpec::Type::kGrpc);
  EXPECT_EQ(bus.health.Describe(), "grpc [::1]:50051 service bus.Health");

  const ComponentSpec& api = *spec->Find("api");
  EXPECT_EQ(api.settings.at("env"), (nlohmann::json{{"PORT", "8080"}, {"MODE", "fast"}}));
  EXPECT_EQ(api.settings.at("max_memory"), 512000000u);
  EXPECT_EQ(api.settings.at("cpu_limit"), 50.0);
  EXPECT_EQ(api.settings.at("command"), nlohmann::json::array({"bin/api", "--port", "8080"}));
  EXPECT_EQ(api.health.expect_status, 204);
  EXPECT_EQ(spec->Find("lb")->depends_on, std::vector<std::string>{"api"});
  EXPECT_EQ(spec->Find("lb")->health.Describe(), "tcp 127.0.0.1:80");

  ASSERT_EQ(spec->triggers.size(), 4u);
  EXPECT_FALSE(spec->triggers_defaulted);
  EXPECT_EQ(spec->triggers[0].component, "api");
  EXPECT_EQ(spec->triggers[0].above, 1500.0);
  EXPECT_EQ(spec->triggers[0].keep_firing_for_ms, 30000);
  EXPECT_EQ(spec->triggers[1].metric, "http_errors_total/http_requests_total");
  EXPECT_EQ(spec->triggers[1].above, 2.5);
  EXPECT_EQ(spec->triggers[1].window_ms, 300000);
  EXPECT_EQ(spec->triggers[1].missing_data, "ignore");
  EXPECT_EQ(spec->triggers[2].consecutive, 2);
  EXPECT_EQ(spec->triggers[0].missing_data, "fail");
  EXPECT_EQ(spec->triggers[3].below, 1.0);
  EXPECT_FALSE(spec->triggers[3].above.has_value());

  ASSERT_EQ(spec->decision_matrix.size(), 2u);
  EXPECT_EQ(spec->decision_matrix[0].recovery_min_ms, 90000);
  EXPECT_EQ(spec->decision_matrix[0].recovery_max_ms, 180000);
  EXPECT_EQ(spec->decision_matrix[1].triggers, std::vector<std::string>{"down"});
  EXPECT_EQ(spec->decision_matrix[1].recovery_min_ms, 60000);
  EXPECT_EQ(spec->decision_matrix[1].recovery_max_ms, 60000);

  ASSERT_EQ(spec->drills.size(), 3u);
  EXPECT_EQ(spec->drills[0].scenario, "Slow API");
  EXPECT_EQ(spec->drills[0].schedule, "30 2 * * mon-fri");
  EXPECT_EQ(spec->drills[1].environment, "staging");
  EXPECT_EQ(spec->drills[2].schedule, "");

  ASSERT_EQ(spec->notify.size(), 3u);
  EXPECT_EQ(spec->notify[0].url, "https://hooks.example.com/x");
  EXPECT_EQ(spec->notify[0].on, std::vector<std::string>{"rollback_failed"});
  EXPECT_EQ(spec->notify[1].command, (std::vector<std::string>{"/usr/local/bin/page", "oncall"}));
  EXPECT_EQ(spec->notify[1].on, std::vector<std::string>{"drill_finished"});
  EXPECT_EQ(spec->notify[2].on, NotifyEventNames());  // no `on`: every event
}

TEST(SpecTest, DefaultTriggersHaveTheSeedsThresholds) {
  auto triggers = DefaultTriggers();
  std::map<std::string, TriggerSpec> by_name;
  for (const auto& t : triggers) by_name[t.name] = t;
  ASSERT_EQ(by_name.size(), 9u);

  const auto& health = by_name.at("health_check_failures");
  EXPECT_EQ(health.signal, Signal::kHealth);
  EXPECT_EQ(health.consecutive, 3);
  EXPECT_EQ(health.action, TriggerAction::kComponentRollback);

  auto expect_above = [&](const std::string& name, const std::string& signal, double above,
                          int64_t for_ms, const std::string& action) {
    SCOPED_TRACE(name);
    const auto& t = by_name[name];
    EXPECT_EQ(Name(t.signal), signal);
    ASSERT_TRUE(t.above.has_value());
    EXPECT_EQ(*t.above, above);
    EXPECT_EQ(t.for_ms, for_ms);
    EXPECT_EQ(Name(t.action), action);
    EXPECT_EQ(t.consecutive, 0);
  };
  expect_above("response_time", "latency", 5000, 300000, "evaluate_and_rollback");
  expect_above("error_rate", "error_rate", 5, 120000, "evaluate_and_rollback");
  expect_above("cpu_usage", "cpu", 90, 600000, "evaluate_and_rollback");
  expect_above("memory_usage", "memory", 95, 300000, "evaluate_and_rollback");
  expect_above("database_timeout", "connect_time", 30000, 0, "immediate_rollback");
  expect_above("nats_disconnection", "disconnected", 60000, 0, "immediate_rollback");

  EXPECT_EQ(by_name.at("service_unreachable").signal, Signal::kUnreachable);
  EXPECT_EQ(by_name.at("service_unreachable").consecutive, 4);
  EXPECT_EQ(by_name.at("service_unreachable").action, TriggerAction::kImmediateRollback);
  EXPECT_EQ(by_name.at("data_integrity").signal, Signal::kIntegrity);
  EXPECT_EQ(by_name.at("data_integrity").consecutive, 1);
}

TEST(SpecTest, DefaultDecisionMatrixIsTheSeedsTable) {
  auto rules = DefaultDecisionMatrix();
  ASSERT_EQ(rules.size(), 5u);
  auto names = [] {
    std::set<std::string> out;
    for (const auto& t : DefaultTriggers()) out.insert(t.name);
    return out;
  }();
  for (const auto& r : rules) {
    for (const auto& t : r.triggers) EXPECT_EQ(names.count(t), 1u) << r.scenario << ": " << t;
  }
  EXPECT_EQ(rules[0].scenario, "Single service failure");
  EXPECT_EQ(rules[0].scope, MatrixScope::kComponent);
  EXPECT_EQ(rules[0].recovery_min_ms, 120000);
  EXPECT_EQ(rules[0].recovery_max_ms, 300000);
  EXPECT_EQ(rules[0].triggers.front(), "health_check_failures");
  EXPECT_EQ(rules[1].scenario, "Database corruption");
  EXPECT_EQ(rules[1].triggers, std::vector<std::string>{"data_integrity"});
  EXPECT_EQ(rules[1].scope, MatrixScope::kComponentAndDependents);
  EXPECT_EQ(rules[1].recovery_max_ms, 900000);
  EXPECT_EQ(rules[2].scope, MatrixScope::kAffected);
  EXPECT_EQ(rules[2].triggers.size(), 4u);
  EXPECT_EQ(rules[3].scope, MatrixScope::kFallback);
  EXPECT_TRUE(rules[3].triggers.empty());
  EXPECT_EQ(rules[3].recovery_min_ms, 300000);
  EXPECT_EQ(rules[4].scope, MatrixScope::kAll);
  EXPECT_EQ(rules[4].recovery_min_ms, 900000);
  EXPECT_EQ(rules[4].recovery_max_ms, 1200000);
}

// ---------------------------------------------------------------------------
// Environment expansion

const char* kExpansionSpec = R"(environment: ${SPEC_TEST_ENV}
components:
  web:
    kind: service
    driver: process
    releases: ${SPEC_TEST_UNSET:-/opt/default}/r
    command: [bin/web, "price$$5", "${SPEC_TEST_EMPTY:-fallback}", "${SPEC_TEST_UNSET:-${SPEC_TEST_ENV}}"]
    env: {COST: "$$${SPEC_TEST_ENV}", SQL: "$1 and $"}
)";

TEST(SpecTest, ExpandsEnvironmentVariables) {
  setenv("SPEC_TEST_ENV", "staging", 1);
  setenv("SPEC_TEST_EMPTY", "", 1);
  unsetenv("SPEC_TEST_UNSET");
  auto spec = ParseSpec(kExpansionSpec, "/tmp/x/backstop.yaml", FakeDrivers());
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->environment, "staging");
  const ComponentSpec& web = *spec->Find("web");
  EXPECT_EQ(web.settings.at("releases"), "/opt/default/r");
  EXPECT_EQ(web.settings.at("command"),
            nlohmann::json::array({"bin/web", "price$5", "fallback", "staging"}));
  EXPECT_EQ(web.settings.at("env").at("COST"), "$staging");
  EXPECT_EQ(web.settings.at("env").at("SQL"), "$1 and $");

  unsetenv("SPEC_TEST_ENV");
  auto errors = CheckSpecText(kExpansionSpec, "spec.yaml", FakeDrivers());
  // Every use of the now-unset variable without a default is an error at its scalar,
  // including the one in another variable's default.
  ASSERT_EQ(errors.size(), 3u) << Dump(errors);
  EXPECT_EQ(errors[0].ToString(),
            "spec.yaml:1:14: environment: environment variable SPEC_TEST_ENV is not set; "
            "expected it to be set, or a default as in ${SPEC_TEST_ENV:-value}");
  EXPECT_EQ(errors[1].key, "components.web.command[3]");
  EXPECT_EQ(errors[1].pos.line, 7);
  EXPECT_EQ(errors[1].pos.column, 68);
  EXPECT_EQ(errors[2].key, "components.web.env.COST");
}

constexpr char kRestorePointsBase[] =
    "environment: staging\n"
    "components:\n"
    "  web: {kind: service, driver: process, releases: /r, command: [x]}\n";

TEST(SpecTest, ParsesTheRestorePointScheduleAndRetention) {
  auto spec = ParseSpec(std::string(kRestorePointsBase) +
                            "restore_points: {every: 1h, keep: {last: 2, hourly: 24, daily: 7, "
                            "weekly: 4, monthly: 6}}\n",
                        "/tmp/x/backstop.yaml", FakeDrivers());
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->restore_points.every_ms, 3600 * 1000);
  EXPECT_EQ(spec->restore_points.keep.last, 2);
  EXPECT_EQ(spec->restore_points.keep.hourly, 24);
  EXPECT_EQ(spec->restore_points.keep.daily, 7);
  EXPECT_EQ(spec->restore_points.keep.weekly, 4);
  EXPECT_EQ(spec->restore_points.keep.monthly, 6);

  auto none = ParseSpec(kRestorePointsBase, "/tmp/x/backstop.yaml", FakeDrivers());
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_EQ(none->restore_points.every_ms, 0);
  EXPECT_TRUE(none->restore_points.keep.empty());
}

TEST(SpecTest, RestorePointErrorsPointAtTheValue) {
  auto errors = CheckSpecText(std::string(kRestorePointsBase) +
                                  "restore_points:\n"
                                  "  every: 0s\n"
                                  "  keep: {hourly: -1, dayly: 7, weekly: x}\n"
                                  "  often: yes\n",
                              "spec.yaml", FakeDrivers());
  ASSERT_EQ(errors.size(), 5u) << Dump(errors);
  EXPECT_EQ(errors[0].ToString(),
            "spec.yaml:5:10: restore_points.every: duration must be greater than zero; expected "
            "a positive duration such as 250ms, 30s, 5m or 1h30m");
  EXPECT_EQ(errors[1].key, "restore_points.keep.hourly");
  EXPECT_EQ(errors[1].pos.line, 6);
  EXPECT_EQ(errors[1].pos.column, 18);
  EXPECT_NE(errors[2].message.find("dayly"), std::string::npos) << errors[2].ToString();
  EXPECT_EQ(errors[3].key, "restore_points.keep.weekly");
  EXPECT_EQ(errors[4].pos.line, 7);
}

TEST(SpecTest, ParsesThePerformanceBlockWithDefaults) {
  auto spec = ParseSpec(std::string(kRestorePointsBase) +
                            "performance:\n"
                            "  samples: 5\n"
                            "  tolerance: {latency: 200%, throughput: 40%}\n"
                            "  min_change: 2ms\n"
                            "  max_latency: 1s\n"
                            "  nats: {messages: 500, size: 128}\n",
                        "/tmp/x/backstop.yaml", FakeDrivers());
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->performance.samples, 5);
  EXPECT_EQ(spec->performance.latency_tolerance_pct, 200);
  EXPECT_EQ(spec->performance.query_tolerance_pct, 50);  // the default
  EXPECT_EQ(spec->performance.throughput_tolerance_pct, 40);
  EXPECT_EQ(spec->performance.min_change_ms, 2);
  EXPECT_EQ(spec->performance.max_latency_ms, 1000);
  EXPECT_EQ(spec->performance.nats_messages, 500);
  EXPECT_EQ(spec->performance.nats_message_size, 128);

  auto none = ParseSpec(kRestorePointsBase, "/tmp/x/backstop.yaml", FakeDrivers());
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_EQ(none->performance.samples, 20);
  EXPECT_EQ(none->performance.latency_tolerance_pct, 50);
  EXPECT_EQ(none->performance.throughput_tolerance_pct, 30);
  EXPECT_EQ(none->performance.max_latency_ms, 0);
  EXPECT_EQ(none->performance.nats_messages, 1000);
  EXPECT_EQ(none->performance.nats_message_size, 256);
}

TEST(SpecTest, PerformanceErrorsPointAtTheValue) {
  auto errors = CheckSpecText(std::string(kRestorePointsBase) +
                                  "performance:\n"
                                  "  samples: 0\n"
                                  "  tolerance: {latency: fast, throughput: 150%, memory: 5%}\n"
                                  "  max_latency: 1000\n"
                                  "  nats: {messages: 10}\n"
                                  "  warmup: 3\n",
                              "spec.yaml", FakeDrivers());
  ASSERT_EQ(errors.size(), 6u) << Dump(errors);
  EXPECT_EQ(errors[0].ToString(),
            "spec.yaml:5:12: performance.samples: 0 is out of range; expected a count from 1 to "
            "1000");
  EXPECT_EQ(errors[1].key, "performance.tolerance.latency");
  EXPECT_EQ(errors[1].pos.line, 6);
  EXPECT_EQ(errors[1].pos.column, 24);
  EXPECT_EQ(errors[2].ToString(),
            "spec.yaml:6:42: performance.tolerance.throughput: 150% is out of range; expected a "
            "percentage from 0% to 100% such as 50%");
  EXPECT_NE(errors[3].message.find("memory"), std::string::npos) << errors[3].ToString();
  EXPECT_EQ(errors[4].key, "performance.max_latency");
  EXPECT_NE(errors[5].message.find("warmup"), std::string::npos) << errors[5].ToString();
}

TEST(SpecTest, ExpandEnvHelper) {
  setenv("SPEC_TEST_A", "a", 1);
  unsetenv("SPEC_TEST_UNSET");
  std::vector<std::string> problems;
  EXPECT_EQ(spec_internal::ExpandEnv("x${SPEC_TEST_A}y", &problems), "xay");
  EXPECT_EQ(spec_internal::ExpandEnv("${SPEC_TEST_UNSET:-d:-e}", &problems), "d:-e");
  EXPECT_EQ(spec_internal::ExpandEnv("${SPEC_TEST_UNSET:-}", &problems), "");
  EXPECT_EQ(spec_internal::ExpandEnv("${SPEC_TEST_A:-b}", &problems), "a");
  EXPECT_EQ(spec_internal::ExpandEnv("$$ $$$$ $x $", &problems), "$ $$ $x $");
  EXPECT_EQ(spec_internal::ExpandEnv("${SPEC_TEST_UNSET:-{a}}", &problems), "{a}");
  EXPECT_TRUE(problems.empty());
  for (const char* bad : {"${", "${A", "${1A}", "${A:x}", "${}", "${A:-x"}) {
    problems.clear();
    spec_internal::ExpandEnv(bad, &problems);
    EXPECT_EQ(problems.size(), 1u) << bad;
  }
}

// ---------------------------------------------------------------------------
// Smaller pieces

TEST(SpecTest, ValidatesCronExpressions) {
  std::string why;
  for (const char* good :
       {"0 3 * * 1", "*/15 0-6/2 1,15 jan-jun *", "59 23 31 12 7", "0 0 * * sun", "0  0 1 */3 *"}) {
    EXPECT_TRUE(spec_internal::ValidateCron(good, &why)) << good << ": " << why;
  }
  struct {
    const char* expr;
    const char* why;
  } bad[] = {{"0 3 * *", "has 4 fields"},
             {"60 * * * *", "minute field '60' is out of range 0-59"},
             {"* 24 * * *", "hour field '24' is out of range 0-23"},
             {"* * 0 * *", "day-of-month field '0' is out of range 1-31"},
             {"* * * 13 *", "month field '13' is out of range 1-12"},
             {"* * * * 8", "day-of-week field '8' is out of range 0-7"},
             {"*/0 * * * *", "bad step"},
             {"5-1 * * * *", "runs backwards"},
             {"1,,2 * * * *", "empty list item"},
             {"x * * * *", "not a number"}};
  for (const auto& b : bad) {
    EXPECT_FALSE(spec_internal::ValidateCron(b.expr, &why)) << b.expr;
    EXPECT_NE(why.find(b.why), std::string::npos) << b.expr << ": " << why;
  }
}

TEST(SpecTest, ParsesRecoveryTimes) {
  using spec_internal::ParseRecoveryTime;
  using Range = std::pair<int64_t, int64_t>;
  EXPECT_EQ(ParseRecoveryTime("2-5m"), Range(120000, 300000));
  EXPECT_EQ(ParseRecoveryTime("5m"), Range(300000, 300000));
  EXPECT_EQ(ParseRecoveryTime("90s-2m"), Range(90000, 120000));
  EXPECT_FALSE(ParseRecoveryTime("5-2m").has_value());
  EXPECT_FALSE(ParseRecoveryTime("2-5 minutes").has_value());
  EXPECT_FALSE(ParseRecoveryTime("-").has_value());
}

TEST(SpecTest, SuggestsCloseKeysOnly) {
  using spec_internal::DidYouMean;
  EXPECT_EQ(DidYouMean("enviroment", {"environment", "components"}),
            " (did you mean 'environment'?)");
  EXPECT_EQ(DidYouMean("Kind", {"kind", "driver"}), " (did you mean 'kind'?)");
  EXPECT_EQ(DidYouMean("colour", {"kind", "driver"}), "");
  EXPECT_EQ(spec_internal::EditDistance("kitten", "sitting"), 3u);
}

TEST(SpecTest, ErrorAndPositionStrings) {
  SourcePos pos{"backstop.yaml", 12, 5};
  EXPECT_EQ(pos.ToString(), "backstop.yaml:12:5");
  EXPECT_EQ((SourcePos{"backstop.yaml", 0, 0}).ToString(), "backstop.yaml");
  SpecError e{pos, "components.webui.health.interval", "bad duration 'x'; expected a duration"};
  EXPECT_EQ(e.ToString(),
            "backstop.yaml:12:5: components.webui.health.interval: bad duration 'x'; expected a "
            "duration");
}

TEST(SpecTest, LoadSpecReportsAMissingFileWithAHint) {
  testing::TempDir dir;
  auto spec = LoadSpec(dir.Join("backstop.yaml"), FakeDrivers());
  ASSERT_FALSE(spec.ok());
  EXPECT_TRUE(spec.status().IsNotFound());
  EXPECT_NE(spec.status().message().find("backstop init --example mistersmith"), std::string::npos);
}

TEST(SpecTest, LoadSpecReadsTheFile) {
  testing::TempDir dir;
  // A driver the catalogue does not know is the one error.
  testing::WriteFileOrDie(dir.Join("backstop.yaml"),
                          "environment: dev\ncomponents:\n  a: {kind: service, driver: "
                          "no-such-driver}\n");
  auto spec = LoadSpec(dir.Join("backstop.yaml"), FakeDrivers());
  ASSERT_FALSE(spec.ok());
  EXPECT_EQ(spec.status().code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(
      spec.status().message().rfind(dir.Join("backstop.yaml") + ":3:30: components.a.driver: "
                                                                "unknown driver 'no-such-driver'",
                                    0),
      0u)
      << spec.status().message();
}

TEST(SpecTest, LoadSpecChecksAgainstTheCatalogueItIsGiven) {
  // The parser knows only the drivers its caller hands it: a driver in this
  // catalogue is accepted with its settings converted, the same file against
  // another catalogue names the driver as unknown.
  testing::TempDir dir;
  testing::WriteFileOrDie(dir.Join("backstop.yaml"),
                          "environment: dev\ncomponents:\n  a: {kind: stream, driver: queue, "
                          "flush: 2s}\n");
  DriverSchemaList only_queue({DriverSchema{
      "queue", {"stream"}, {MakeSetting("flush", Type::kDuration, true, "how often")}}});
  auto spec = LoadSpec(dir.Join("backstop.yaml"), only_queue);
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->components.at("a").driver, "queue");
  EXPECT_EQ(spec->components.at("a").settings, nlohmann::json({{"flush", 2000}}));

  auto other = LoadSpec(dir.Join("backstop.yaml"), FakeDrivers());
  ASSERT_FALSE(other.ok());
  EXPECT_NE(other.status().message().find("unknown driver 'queue'"), std::string::npos)
      << other.status().message();
}

TEST(SpecTest, ReadSpecFileRefusesWhatIsNotASpecFile) {
  testing::TempDir dir;
  // A directory, a device that never ends, a pipe nobody writes to: each a
  // clear InvalidArgument (exit 2), never a read without bound or a hang.
  for (const std::string& path : {dir.path(), std::string("/dev/zero")}) {
    auto text = ReadSpecFile(path);
    ASSERT_FALSE(text.ok()) << path;
    EXPECT_EQ(text.status().code(), Status::Code::kInvalidArgument) << path;
    EXPECT_NE(text.status().message().find("regular YAML file"), std::string::npos)
        << text.status().message();
    auto spec = LoadSpec(path, FakeDrivers());
    ASSERT_FALSE(spec.ok());
    EXPECT_EQ(spec.status().code(), Status::Code::kInvalidArgument);
  }
  EXPECT_NE(ReadSpecFile(dir.path()).status().message().find("is a directory"), std::string::npos);
  EXPECT_NE(ReadSpecFile("/dev/zero").status().message().find("is a character device"),
            std::string::npos);
  const std::string fifo = dir.Join("fifo.yaml");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_NE(ReadSpecFile(fifo).status().message().find("is a pipe"), std::string::npos);

  // Over the limit: refused, saying the limit.
  const std::string big = dir.Join("big.yaml");
  testing::WriteFileOrDie(big, "environment: dev\n# " + std::string(kMaxSpecBytes, 'x') + "\n");
  auto text = ReadSpecFile(big);
  ASSERT_FALSE(text.ok());
  EXPECT_EQ(text.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(text.status().message().find("larger than 4 MiB"), std::string::npos)
      << text.status().message();

  // Just under it: read whole.
  const std::string fits = dir.Join("fits.yaml");
  const std::string content = "# " + std::string(kMaxSpecBytes - 3, 'x') + "\n";
  testing::WriteFileOrDie(fits, content);
  auto read = ReadSpecFile(fits);
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(read->size(), kMaxSpecBytes);

  auto missing = ReadSpecFile(dir.Join("nosuch.yaml"));
  EXPECT_TRUE(missing.status().IsNotFound());
}

TEST(SpecTest, IntegrityExpectationsAreTyped) {
  std::string text =
      "environment: dev\ncomponents:\n  db:\n    kind: database\n    driver: postgres\n"
      "    connection: host=x\n    integrity:\n"
      "      - {name: a, sql: SELECT 1, expect: 0}\n"
      "      - {name: b, sql: SELECT 1, expect: <= 0}\n"
      "      - {name: c, sql: SELECT 1, expect: '> 5'}\n"
      "      - {name: d, sql: SELECT 1, expect: ==2.5}\n";
  auto spec = ParseSpec(text, "typed.yaml", FakeDrivers());
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  const auto& items = spec->Find("db")->settings.at("integrity");
  EXPECT_EQ(items[0].at("expect"), "0");
  EXPECT_EQ(items[1].at("expect"), "<= 0");
  EXPECT_EQ(items[2].at("expect"), "> 5");
  EXPECT_EQ(items[3].at("expect"), "2.5");
}

TEST(ExpectationTest, ComparesNumbersNotText) {
  std::string why;
  auto zero = Expectation::Parse("0", &why);
  ASSERT_TRUE(zero.has_value());
  EXPECT_TRUE(zero->Matches("0"));
  EXPECT_TRUE(zero->Matches("0.0")) << "numerically equal, textually not";
  EXPECT_FALSE(zero->Matches("1"));
  EXPECT_FALSE(zero->Matches("NULL", &why));
  EXPECT_EQ(why, "'NULL' is not a number");
  EXPECT_FALSE(zero->Matches("zero"));

  auto le = Expectation::Parse("<= 0", &why);
  ASSERT_TRUE(le.has_value());
  EXPECT_TRUE(le->Matches("-3"));
  EXPECT_TRUE(le->Matches("0"));
  EXPECT_FALSE(le->Matches("1"));
  auto gt = Expectation::Parse(">5", &why);
  ASSERT_TRUE(gt.has_value());
  EXPECT_TRUE(gt->Matches("6"));
  EXPECT_FALSE(gt->Matches("5"));
  EXPECT_TRUE(gt->Matches("5.5"));
  EXPECT_EQ(gt->ToString(), "> 5");
  auto ne = Expectation::Parse("!= 0", &why);
  ASSERT_TRUE(ne.has_value());
  EXPECT_TRUE(ne->Matches("12"));
  EXPECT_FALSE(ne->Matches("0"));
  // Exact for integers past 2^53.
  auto big = Expectation::Parse("9007199254740993", &why);
  ASSERT_TRUE(big.has_value());
  EXPECT_FALSE(big->Matches("9007199254740992"));

  for (const char* bad : {"zero", "", "=< 0", "<=", "0x10", "1e3", "five", "< 5 apples", "nan"}) {
    EXPECT_FALSE(Expectation::Parse(bad, &why).has_value()) << bad;
  }
}

TEST(SpecTest, SurvivesHostileInput) {
  // Each must produce errors, not a crash or a hang.
  const char* inputs[] = {
      "&a [*a]",
      "components: &c {x: *c}\nenvironment: e",
      "environment: e\ncomponents:\n  a: &n {kind: service, driver: process, depends_on: *n}",
      "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
      "environment: [1, {2: 3}]\ncomponents: 5\ntriggers: {a: b}\ndrills: x\nnotify: ~",
      "? [a, b]\n: c\nenvironment: e",
      "\xff\xfe\x00garbage",
      "environment: e\ncomponents:\n  a:\n    kind: service\n    driver: process\n    health: "
      "[http]\n    releases: {}\n    command: {}\n    env: [1]",
      "environment: ${A:-${B:-${C:-${D:-${E:-${F:-${G:-${H:-${I:-${J:-x}}}}}}}}}}\n"
      "components: {}",
  };
  for (const char* input : inputs) {
    auto errors = CheckSpecText(input, "hostile.yaml", FakeDrivers());
    EXPECT_FALSE(errors.empty()) << input;
  }
  // yaml-cpp 0.7's LoadAll loops forever on these (jbeder/yaml-cpp#1040).
  for (const char* input : {",", "- a\n,", "environment: e\n---\n,"}) {
    auto errors = CheckSpecText(input, "stuck.yaml", FakeDrivers());
    ASSERT_FALSE(errors.empty()) << input;
    EXPECT_NE(errors[0].message.find("YAML syntax error: unexpected ','"), std::string::npos)
        << errors[0].ToString();
  }
  auto comma = CheckSpecText("- a\n,", "stuck.yaml", FakeDrivers());
  EXPECT_EQ(comma[0].pos.line, 2);
  EXPECT_EQ(comma[0].pos.column, 1);
  auto two = CheckSpecText("environment: e\n---\nenvironment: f\n", "two.yaml", FakeDrivers());
  ASSERT_EQ(two.size(), 2u) << Dump(two);
  EXPECT_EQ(two[0].key, "components");  // the first document lacks them
  EXPECT_EQ(two[1].pos.line, 2);
  EXPECT_NE(two[1].message.find("more than one YAML document"), std::string::npos);

  std::string deep(100000, '[');
  EXPECT_FALSE(CheckSpecText(deep, "deep.yaml", FakeDrivers()).empty());
}

}  // namespace
TEST(ProbeSpecTest, ForPortReplacesEveryPortPlaceholderInTargetAndCommand) {
  ProbeSpec http;
  http.type = ProbeSpec::Type::kHttp;
  http.target = "http://127.0.0.1:{port}/health?self={port}";
  EXPECT_EQ(http.ForPort(3001).target, "http://127.0.0.1:3001/health?self=3001");
  ProbeSpec exec;
  exec.type = ProbeSpec::Type::kExec;
  exec.command = {"check", "--port={port}", "{port}"};
  EXPECT_EQ(exec.ForPort(42).command, (std::vector<std::string>{"check", "--port=42", "42"}));
  EXPECT_EQ(exec.command[2], "{port}");  // the spec's own probe is left as written
}

}  // namespace backstop

#include "supervisor/spec.h"

#include <gtest/gtest.h>

namespace agentfense::supervisor {
namespace {

TEST(SupervisorSpec, RoundTrips) {
  SupervisorSpec s;
  s.sandbox_id = "sb_0123456789abcdef";
  s.source_dir = "/data/cb";
  s.mountpoint = "/data/mnt/sb";
  s.run_dir = "/data/run/sb";
  s.agent_path = "/usr/lib/agentfense/agentfense-agent";
  s.rules = {{"**/*", policy::PatternType::kGlob, policy::Level::kRead, 0},
             {"/secrets", policy::PatternType::kDirectory, policy::Level::kNone, 100}};
  s.runtime = RuntimeKind::kDocker;
  s.image = "img:1";
  s.network = true;
  s.egress.allow = {"github.com", "udp:10.0.0.53:53"};
  s.egress.dns_servers = {"198.51.100.53"};
  s.egress.public_cidrs = {"198.51.100.0/24"};
  s.delta_dir = "/var/lib/x/delta";
  s.delta_quota_bytes = 1 << 20;
  s.delta_quota_inodes = 7;
  s.fuse_busy_poll_us = 25;
  s.limits = {512u << 20, 50000, 512, 64};
  auto back = SpecFromJson(SpecToJson(s));
  ASSERT_TRUE(back.ok()) << back.error().ToString();
  EXPECT_EQ(back->sandbox_id, s.sandbox_id);
  EXPECT_EQ(back->rules.size(), 2u);
  EXPECT_EQ(back->rules[1].type, policy::PatternType::kDirectory);
  EXPECT_EQ(back->rules[1].level, policy::Level::kNone);
  EXPECT_EQ(back->rules[1].priority, 100);
  EXPECT_EQ(back->runtime, RuntimeKind::kDocker);
  EXPECT_EQ(back->image, "img:1");
  EXPECT_TRUE(back->network);
  EXPECT_FALSE(back->egress.any_public);
  EXPECT_EQ(back->egress.allow, s.egress.allow);
  EXPECT_EQ(back->egress.dns_servers, s.egress.dns_servers);
  EXPECT_EQ(back->egress.public_cidrs, s.egress.public_cidrs);
  EXPECT_EQ(back->delta_dir, "/var/lib/x/delta");
  EXPECT_EQ(back->delta_quota_bytes, 1u << 20);
  EXPECT_EQ(back->delta_quota_inodes, 7u);
  EXPECT_EQ(back->fuse_busy_poll_us, 25);
  EXPECT_EQ(SupervisorSpec{}.fuse_busy_poll_us, -1);  // not set: the mount's default
  EXPECT_EQ(back->limits.memory_bytes, 512u << 20);
  EXPECT_EQ(back->limits.cpu_quota_us, 50000);
  EXPECT_EQ(back->limits.pids_limit, 64u);
}

TEST(SupervisorSpec, RejectsBadInput) {
  EXPECT_FALSE(SpecFromJson("[]").ok());
  EXPECT_FALSE(SpecFromJson("{").ok());
  EXPECT_FALSE(SpecFromJson(R"({"sandbox_id": 3})").ok());
  auto r = SpecFromJson(
      R"({"sandbox_id":"x","source_dir":"rel","mountpoint":"/m","run_dir":"/r","rules":[],)"
      R"("runtime":"bwrap","agent_path":"/a"})");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("absolute"), std::string::npos);
  r = SpecFromJson(
      R"({"sandbox_id":"x","source_dir":"/s","mountpoint":"/m","run_dir":"/r","rules":[],)"
      R"("runtime":"lxc","agent_path":"/a"})");
  ASSERT_FALSE(r.ok());
}

TEST(SupervisorSpec, EgressJson) {
  auto e = EgressFromJson(R"({"any_public": true, "allow": ["a.test"]})");
  ASSERT_TRUE(e.ok());
  EXPECT_TRUE(e->any_public);
  EXPECT_EQ(e->allow, std::vector<std::string>{"a.test"});
  EXPECT_FALSE(EgressFromJson(R"({"allow": "a.test"})").ok());
  EXPECT_FALSE(EgressFromJson(R"({"allow": [1]})").ok());
  EXPECT_FALSE(EgressFromJson(R"({"any_public": "yes"})").ok());
  EXPECT_FALSE(EgressFromJson("[").ok());
}

TEST(SupervisorSpec, RulesJsonRoundTripsAndNamesBadRules) {
  std::vector<policy::Rule> rules = {{"**/*", policy::PatternType::kGlob, policy::Level::kRead, 0},
                                     {"/x", policy::PatternType::kFile, policy::Level::kNone, -5}};
  auto back = RulesFromJson(RulesToJson(rules));
  ASSERT_TRUE(back.ok()) << back.error().ToString();
  ASSERT_EQ(back->size(), 2u);
  EXPECT_EQ((*back)[1].type, policy::PatternType::kFile);
  EXPECT_EQ((*back)[1].priority, -5);
  // type and priority are optional
  auto minimal = RulesFromJson(R"([{"pattern":"/a","level":"write"}])");
  ASSERT_TRUE(minimal.ok());
  EXPECT_EQ((*minimal)[0].type, policy::PatternType::kGlob);
  for (const char* bad : {R"({})", R"([{"pattern":"/a"}])", R"([{"pattern":"/a","level":"rw"}])",
                          R"([{"pattern":"/a","level":"read"},{"pattern":1,"level":"read"}])",
                          R"([{"pattern":"/a","level":"read","priority":1e12}])", "["}) {
    auto r = RulesFromJson(bad);
    EXPECT_FALSE(r.ok()) << bad;
  }
  auto second = RulesFromJson(R"([{"pattern":"/a","level":"read"},{"pattern":"/b","level":"x"}])");
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.error().message().find("rule 1"), std::string::npos);
}

}  // namespace
}  // namespace agentfense::supervisor

// Presets (§3.6) on fixed paths, and UniformLevelBeneath.
#include <gtest/gtest.h>

#include "policy/policy_test_util.h"

namespace agentfense::policy {
namespace {

using testing::MustCompile;
using testing::MustPreset;
using testing::Rules;

struct PresetCase {
  const char* preset;
  const char* path;
  bool is_dir;
  Level level;
};

const PresetCase kPresetCases[] = {
    {"agent-safe", "/secrets", true, Level::kNone},
    {"agent-safe", "/secrets", false, Level::kNone},
    {"agent-safe", "/secrets/a", false, Level::kNone},
    {"agent-safe", "/a/b/secrets/c/d", false, Level::kNone},
    {"agent-safe", "/a/b/secrets", true, Level::kNone},
    {"agent-safe", "/a/b/secrets/c", false, Level::kNone},
    {"agent-safe", "/.git", true, Level::kNone},
    {"agent-safe", "/.git/config", false, Level::kNone},
    {"agent-safe", "/pkg/.git/objects/x", false, Level::kNone},
    {"agent-safe", "/.env", false, Level::kNone},
    {"agent-safe", "/x/.env.local", false, Level::kNone},
    {"agent-safe", "/k.key", false, Level::kNone},
    {"agent-safe", "/a/b.pem", false, Level::kNone},
    {"agent-safe", "/credentials.json", false, Level::kNone},
    {"agent-safe", "/deep/credentials", false, Level::kNone},
    {"agent-safe", "/src/app.py", false, Level::kRead},
    {"agent-safe", "/src/x.py", false, Level::kRead},
    {"agent-safe", "/src", true, Level::kRead},
    {"agent-safe", "/", true, Level::kRead},
    {"agent-safe", "/.gitignore", false, Level::kRead},
    {"agent-safe", "/keys.txt", false, Level::kRead},
    {"agent-safe", "/output/r.txt", false, Level::kWrite},
    {"agent-safe", "/output", true, Level::kWrite},
    {"agent-safe", "/output/sub/deep.txt", false, Level::kWrite},
    {"agent-safe", "/tmp/x", false, Level::kWrite},
    {"agent-safe", "/src/tmp/x", false, Level::kRead},
    {"agent-safe", "/output/.env", false, Level::kNone},
    {"agent-safe", "/output/secrets/x", false, Level::kNone},
    {"agent-safe", "/output/.git/HEAD", false, Level::kNone},
    {"agent-safe", "/output/a.pem", false, Level::kNone},
    {"read-only", "/anything/at/all", false, Level::kRead},
    {"read-only", "/.env", false, Level::kRead},
    {"read-only", "/", true, Level::kRead},
    {"full-access", "/x", false, Level::kWrite},
    {"full-access", "/.git/config", false, Level::kWrite},
    {"development", "/src/a.c", false, Level::kWrite},
    {"development", "/.env", false, Level::kNone},
    {"development", "/conf/secrets/db", false, Level::kNone},
    {"development", "/conf/secrets", true, Level::kNone},
    {"development", "/tls/server.pem", false, Level::kNone},
    {"development", "/.git/config", false, Level::kWrite},
    {"view-only", "/a/b", false, Level::kView},
    {"view-only", "/a", true, Level::kView},
};

TEST(PresetTest, EffectiveLevels) {
  for (const PresetCase& c : kPresetCases) {
    Policy p = MustPreset(c.preset);
    EXPECT_EQ(p.LevelOf(c.path, c.is_dir), c.level)
        << c.preset << " " << c.path << (c.is_dir ? " (dir)" : "") << ": got "
        << LevelName(p.LevelOf(c.path, c.is_dir));
  }
}

TEST(PresetTest, ExplainCommandExample) {
  // `agentfense policy explain --preset agent-safe /secrets/a /a/b/secrets/c /.git/config
  //  /src/x.py /output/r.txt` gives none, none, none, read, write.
  Policy p = MustPreset("agent-safe");
  const std::pair<const char*, Level> kWant[] = {
      {"/secrets/a", Level::kNone},     {"/a/b/secrets/c", Level::kNone},
      {"/.git/config", Level::kNone},   {"/src/x.py", Level::kRead},
      {"/output/r.txt", Level::kWrite},
  };
  for (const auto& [path, level] : kWant) {
    EXPECT_EQ(p.Explain(path).as_file.level, level) << path;
  }
}

TEST(PresetTest, NamesAndRules) {
  std::vector<std::string> names = PresetNames();
  ASSERT_EQ(names.size(), 5u);
  for (const std::string& n : names) {
    auto rules = PresetRules(n);
    ASSERT_TRUE(rules.ok()) << n;
    EXPECT_FALSE(rules->empty());
    EXPECT_TRUE(Policy::Compile(*rules).ok()) << n;
  }
  auto safe = PresetRules("agent-safe");
  ASSERT_TRUE(safe.ok());
  EXPECT_EQ(safe->size(), 9u);
  auto dev = PresetRules("development");
  ASSERT_TRUE(dev.ok());
  EXPECT_EQ(dev->size(), 6u);
  auto bad = PresetRules("agent-unsafe");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(bad.error().message().find("agent-unsafe"), std::string::npos);
}

struct UniformCase {
  const char* name;
  std::vector<const char*> rules;  // testing::R syntax; empty + preset set → preset
  const char* preset;
  const char* dir;
  std::optional<Level> want;
};

TEST(UniformLevelBeneathTest, Table) {
  const UniformCase kCases[] = {
      {"**/* write beneath /a", {"**/*=write"}, nullptr, "/a", Level::kWrite},
      {"**/* write beneath /", {"**/*=write"}, nullptr, "/", Level::kWrite},
      {"agent-safe beneath /", {}, "agent-safe", "/", std::nullopt},
      {"agent-safe beneath /output", {}, "agent-safe", "/output", std::nullopt},
      {"agent-safe beneath /src", {}, "agent-safe", "/src", std::nullopt},
      {"agent-safe beneath /secrets", {}, "agent-safe", "/secrets", Level::kNone},
      {"agent-safe beneath /a/.git", {}, "agent-safe", "/a/.git", Level::kNone},
      {"full-access", {}, "full-access", "/", Level::kWrite},
      {"full-access deep", {}, "full-access", "/a/b/c", Level::kWrite},
      {"read-only", {}, "read-only", "/x", Level::kRead},
      {"view-only", {}, "view-only", "/x", Level::kView},
      {"development beneath /src", {}, "development", "/src", std::nullopt},
      {"no rules", {}, nullptr, "/", Level::kNone},
      {"nothing alive", {"/a/**=write"}, nullptr, "/b", Level::kNone},
      {"trailing ** covers", {"/a/**=write"}, nullptr, "/a", Level::kWrite},
      {"trailing ** covers deeper", {"/a/**=write"}, nullptr, "/a/b", Level::kWrite},
      {"directory type covers", {"dir:/a=read"}, nullptr, "/a", Level::kRead},
      {"star covers one level only", {"/a/*=write"}, nullptr, "/a", std::nullopt},
      {"partial rule", {"/a/*.py=write"}, nullptr, "/a", std::nullopt},
      {"exception beneath", {"/a/**=write", "/a/b/c=read"}, nullptr, "/a", std::nullopt},
      {"exception ranked lower", {"/a/**=write@5", "/a/b/c=read"}, nullptr, "/a", Level::kWrite},
      {"exception of same level", {"/a/**=write", "/a/b/c=write"}, nullptr, "/a", Level::kWrite},
      {"all none", {"/a/x=none", "/a/y/**=none"}, nullptr, "/a", Level::kNone},
      {"visible rule partial", {"/a/x=read"}, nullptr, "/a", std::nullopt},
      {"any run covers", {"/a**=write"}, nullptr, "/a", Level::kWrite},
      {"class does not cover", {"/a/[!x]*/**=write"}, nullptr, "/a", std::nullopt},
      {"segments then any", {"/a/**/**x=write"}, nullptr, "/a", std::nullopt},
      {"tail after star covers", {"/a/*=write", "/a/*/**=write"}, nullptr, "/a", Level::kWrite},
  };
  for (const UniformCase& c : kCases) {
    std::vector<Rule> rules;
    if (c.preset != nullptr) {
      rules = *PresetRules(c.preset);
    } else {
      for (const char* s : c.rules) rules.push_back(testing::R(s));
    }
    Policy p = MustCompile(rules);
    std::optional<Level> got = p.UniformLevelBeneath(c.dir);
    EXPECT_EQ(got, c.want) << c.name << ": got "
                           << (got ? std::string(LevelName(*got)) : std::string("nullopt"));
  }
}

}  // namespace
}  // namespace agentfense::policy

// Decision cost of the permission engine (goal: ≤ 200 ns for a deep path with 100 rules).
//   build-X/bin/policy_bench --benchmark_min_time=0.5
// Rule sets: the agent-safe preset plus generated user globs (directories, extensions, `**`
// anywhere, classes, file and directory rules, varied priorities), 10 or 100 rules in total.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "policy/policy.h"

namespace {

using agentfense::policy::Level;
using agentfense::policy::PatternType;
using agentfense::policy::Policy;
using agentfense::policy::Rule;

std::vector<Rule> MakeRules(size_t n) {
  std::vector<Rule> rules = *agentfense::policy::PresetRules("agent-safe");
  const char* kExt[] = {"py", "ts", "go", "rs", "md", "json", "yaml", "c", "h", "sql"};
  for (size_t i = 0; rules.size() < n; ++i) {
    std::string k = std::to_string(i);
    auto prio = static_cast<int32_t>(i % 7) * 10;
    switch (i % 8) {
      case 0:
        rules.push_back({"/src/module" + k + "/**", PatternType::kGlob, Level::kWrite, prio});
        break;
      case 1:
        rules.push_back(
            {"**/*." + std::string(kExt[i % 10]) + k, PatternType::kGlob, Level::kRead, prio});
        break;
      case 2:
        rules.push_back({"/data/set" + k + "/*.csv", PatternType::kGlob, Level::kView, prio});
        break;
      case 3:
        rules.push_back({"**/build" + k + "/**", PatternType::kGlob, Level::kNone, prio});
        break;
      case 4:
        rules.push_back({"/docs/**/chapter" + k + ".md", PatternType::kGlob, Level::kWrite, prio});
        break;
      case 5:
        rules.push_back(
            {"/home/project/src/components/w" + k, PatternType::kDirectory, Level::kRead, prio});
        break;
      case 6:
        rules.push_back(
            {"/home/project/config/app" + k + ".yaml", PatternType::kFile, Level::kWrite, prio});
        break;
      case 7:
        rules.push_back({"/lib/[a-m]*" + k + "/**.o", PatternType::kGlob, Level::kNone, prio});
        break;
    }
  }
  rules.resize(n);
  return rules;
}

// 12 segments, 81 bytes.
const std::string kDeepPath =
    "/home/project/src/components/widgets/internal/button/styles/v2/theme/dark/main.py";

void BM_DecideFile(benchmark::State& state) {
  Policy p = *Policy::Compile(MakeRules(static_cast<size_t>(state.range(0))));
  for (auto _ : state) benchmark::DoNotOptimize(p.Decide(kDeepPath, false));
  state.SetLabel(std::to_string(kDeepPath.size()) + "-byte path");
}
BENCHMARK(BM_DecideFile)->Arg(10)->Arg(100);

void BM_DecideDirectory(benchmark::State& state) {
  Policy p = *Policy::Compile(MakeRules(static_cast<size_t>(state.range(0))));
  for (auto _ : state) benchmark::DoNotOptimize(p.Decide(kDeepPath, true));
}
BENCHMARK(BM_DecideDirectory)->Arg(10)->Arg(100);

// Many different paths (a `find` over a tree): mostly cached transitions after warm-up.
void BM_DecideTree(benchmark::State& state) {
  Policy p = *Policy::Compile(MakeRules(static_cast<size_t>(state.range(0))));
  std::vector<std::string> paths;
  const char* kSegs[] = {"src",     "lib",  "docs",  "data",    "output",  ".git",
                         "secrets", "a",    "b",     "module3", "build11", "set2",
                         "tmp",     "x.py", "y.csv", "z.md",    ".env"};
  uint32_t seed = 12345;
  for (int i = 0; i < 4096; ++i) {
    std::string path;
    for (int d = 0; d < 3 + i % 6; ++d) {
      seed = seed * 1103515245 + 12345;
      path += std::string("/") + kSegs[(seed >> 16) % std::size(kSegs)];
    }
    paths.push_back(path);
  }
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(p.Decide(paths[i & 4095], (i & 1) != 0));
    ++i;
  }
}
BENCHMARK(BM_DecideTree)->Arg(10)->Arg(100);

void BM_DecideParallel(benchmark::State& state) {
  static const Policy* shared = new Policy(*Policy::Compile(MakeRules(100)));
  for (auto _ : state) benchmark::DoNotOptimize(shared->Decide(kDeepPath, false));
}
BENCHMARK(BM_DecideParallel)->Threads(1)->Threads(2);

void BM_Explain(benchmark::State& state) {
  Policy p = *Policy::Compile(MakeRules(100));
  for (auto _ : state) benchmark::DoNotOptimize(p.Explain(kDeepPath));
}
BENCHMARK(BM_Explain);

void BM_UniformLevelBeneath(benchmark::State& state) {
  Policy p = *Policy::Compile(MakeRules(100));
  for (auto _ : state) benchmark::DoNotOptimize(p.UniformLevelBeneath("/src/module8"));
}
BENCHMARK(BM_UniformLevelBeneath);

void BM_Compile(benchmark::State& state) {
  std::vector<Rule> rules = MakeRules(static_cast<size_t>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(Policy::Compile(rules));
}
BENCHMARK(BM_Compile)->Arg(10)->Arg(100)->Arg(1000);

// A cold policy: the first decision of a fresh policy builds the DFA states it walks through.
void BM_FirstDecision(benchmark::State& state) {
  std::vector<Rule> rules = MakeRules(static_cast<size_t>(state.range(0)));
  for (auto _ : state) {
    state.PauseTiming();
    Policy p = *Policy::Compile(rules);
    state.ResumeTiming();
    benchmark::DoNotOptimize(p.Decide(kDeepPath, true));
  }
}
BENCHMARK(BM_FirstDecision)->Arg(10)->Arg(100);

}  // namespace

BENCHMARK_MAIN();

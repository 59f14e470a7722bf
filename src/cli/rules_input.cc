#include "cli/rules_input.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "base/unique_fd.h"

namespace agentfense::cli {
namespace {

Error Invalid(std::string message) {
  return Error(ErrorCode::kInvalidArgument, std::move(message));
}

std::string_view Trim(std::string_view s) {
  constexpr std::string_view kBlank = " \t\r\v\f";
  size_t begin = s.find_first_not_of(kBlank);
  if (begin == std::string_view::npos) return {};
  size_t end = s.find_last_not_of(kBlank);
  return s.substr(begin, end - begin + 1);
}

// Reads the whole file. User-named files may be symlinks, so no O_NOFOLLOW here (unlike paths
// under a sandbox root); a FIFO or device is refused so that `check /dev/zero` cannot hang.
Result<std::string> ReadSmallFile(const std::string& path) {
  int raw = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (raw < 0) return Error::FromErrno(errno, "cannot open rules file '" + path + "'");
  UniqueFd fd(raw);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    return Error::FromErrno(errno, "cannot stat rules file '" + path + "'");
  }
  if (!S_ISREG(st.st_mode)) return Invalid("rules file '" + path + "' is not a regular file");
  if (static_cast<uint64_t>(st.st_size) > kMaxRulesFileBytes) {
    return Invalid("rules file '" + path + "' is larger than " +
                   std::to_string(kMaxRulesFileBytes >> 20) + " MiB");
  }
  std::string text;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::FromErrno(errno, "cannot read rules file '" + path + "'");
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > kMaxRulesFileBytes) {
      return Invalid("rules file '" + path + "' grew beyond the size limit while reading");
    }
  }
  return text;
}

}  // namespace

Result<std::vector<SourcedRule>> ParseRulesText(std::string_view text,
                                                std::string_view source_name) {
  std::vector<SourcedRule> rules;
  size_t line_no = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = Trim(text.substr(pos, nl - pos));
    ++line_no;
    pos = nl + 1;
    if (line.empty() || line.front() == '#') continue;
    std::string where = std::string(source_name) + ":" + std::to_string(line_no);
    if (line.find('\0') != std::string_view::npos) return Invalid(where + ": NUL byte in rule");
    Result<policy::Rule> rule = policy::ParseRuleSpec(line);
    if (!rule.ok()) return Invalid(where + ": " + rule.error().message());
    rules.push_back({std::move(rule).value(), std::move(where)});
    if (rules.size() > policy::kMaxRules) {
      return Invalid(std::string(source_name) + ": more than " + std::to_string(policy::kMaxRules) +
                     " rules");
    }
  }
  return rules;
}

Result<std::vector<SourcedRule>> LoadRulesFile(const std::string& path) {
  AF_ASSIGN_OR_RETURN(std::string text, ReadSmallFile(path));
  return ParseRulesText(text, path);
}

Result<std::vector<SourcedRule>> CollectRules(const RuleSources& sources) {
  if (!sources.preset && !sources.rules_file && sources.rule_specs.empty()) {
    return Invalid("no rules given (use --preset, --rule or --rules-file)");
  }
  std::vector<SourcedRule> out;
  if (sources.preset) {
    AF_ASSIGN_OR_RETURN(std::vector<policy::Rule> preset, policy::PresetRules(*sources.preset));
    for (size_t i = 0; i < preset.size(); ++i) {
      out.push_back(
          {std::move(preset[i]), "preset " + *sources.preset + ", rule " + std::to_string(i)});
    }
  }
  if (sources.rules_file) {
    AF_ASSIGN_OR_RETURN(std::vector<SourcedRule> from_file, LoadRulesFile(*sources.rules_file));
    for (SourcedRule& r : from_file) out.push_back(std::move(r));
  }
  for (size_t i = 0; i < sources.rule_specs.size(); ++i) {
    const std::string& spec = sources.rule_specs[i];
    std::string origin = "--rule #" + std::to_string(i + 1);
    if (spec.find('\0') != std::string::npos) return Invalid(origin + ": NUL byte in rule");
    Result<policy::Rule> rule = policy::ParseRuleSpec(spec);
    if (!rule.ok()) return Invalid(origin + ": " + rule.error().message());
    out.push_back({std::move(rule).value(), std::move(origin)});
  }
  if (out.size() > policy::kMaxRules) {
    return Invalid("too many rules: " + std::to_string(out.size()) + " (at most " +
                   std::to_string(policy::kMaxRules) + ")");
  }
  return out;
}

Result<policy::Policy> CompileSourced(const std::vector<SourcedRule>& rules) {
  std::vector<policy::Rule> plain;
  plain.reserve(rules.size());
  for (const SourcedRule& r : rules) plain.push_back(r.rule);
  Result<policy::Policy> compiled = policy::Policy::Compile(std::move(plain));
  if (compiled.ok()) return compiled;
  // The engine names an index into the merged list; find the rule and report where the user
  // wrote it. Only on the error path, so compiling rules one by one costs nothing normally.
  for (const SourcedRule& r : rules) {
    Result<policy::Policy> single = policy::Policy::Compile({r.rule});
    if (!single.ok()) return Invalid(r.origin + ": " + single.error().message());
  }
  return std::move(compiled).error();
}

std::string FormatRule(const policy::Rule& rule) {
  std::string out = rule.pattern + "=" + std::string(policy::LevelName(rule.level)) + "@" +
                    std::to_string(rule.priority);
  if (rule.type != policy::PatternType::kGlob) {
    out += " (" + std::string(policy::PatternTypeName(rule.type)) + ")";
  }
  return out;
}

}  // namespace agentfense::cli

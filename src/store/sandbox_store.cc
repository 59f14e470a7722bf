// MetadataStore: sandboxes. Rules, labels and env are stored as JSON text (they are always read
// and written whole, never queried by content).
#include <iterator>
#include <limits>
#include <nlohmann/json.hpp>

#include "base/ids.h"
#include "store/metadata_store.h"

namespace agentfense::store {
namespace {

using Json = nlohmann::json;

constexpr const char* kRuleTypeNames[] = {"glob", "directory", "file"};
// Indexed by policy::Level; stored as names, so the numbering may change without a migration.
constexpr const char* kLevelNames[] = {"none", "view", "ask", "read", "write"};

std::string_view StatusName(SandboxStatus s) {
  switch (s) {
    case SandboxStatus::kPending:
      return "pending";
    case SandboxStatus::kRunning:
      return "running";
    case SandboxStatus::kStopped:
      return "stopped";
    case SandboxStatus::kError:
      return "error";
  }
  return "error";
}

Result<SandboxStatus> ParseStatus(std::string_view s) {
  if (s == "pending") return SandboxStatus::kPending;
  if (s == "running") return SandboxStatus::kRunning;
  if (s == "stopped") return SandboxStatus::kStopped;
  if (s == "error") return SandboxStatus::kError;
  return Error(ErrorCode::kDataLoss, "unknown sandbox status in database: " + std::string(s));
}

bool ValidStatus(SandboxStatus s) {
  int v = static_cast<int>(s);
  return v >= 1 && v <= 4;
}

// Serialising client strings that are not UTF-8 throws in nlohmann::json; proto3 strings must be
// UTF-8 anyway, so that is an invalid argument, reported instead of thrown.
Result<std::string> Dump(const Json& j, std::string_view what) {
  try {
    return j.dump();
  } catch (const Json::exception&) {
    return Error(ErrorCode::kInvalidArgument, std::string(what) + " contain invalid UTF-8");
  }
}

Result<std::string> RulesToJson(const std::vector<RuleRecord>& rules) {
  Json arr = Json::array();
  for (const RuleRecord& r : rules) {
    if (r.type < 0 || r.type > 2) return Error(ErrorCode::kInvalidArgument, "bad rule type");
    if (r.level < 0 || r.level >= static_cast<int>(std::size(kLevelNames))) {
      return Error(ErrorCode::kInvalidArgument, "bad rule level");
    }
    arr.push_back({{"pattern", r.pattern},
                   {"type", kRuleTypeNames[r.type]},
                   {"level", kLevelNames[r.level]},
                   {"priority", r.priority}});
  }
  return Dump(arr, "rules");
}

template <size_t N>
int IndexOf(const char* const (&names)[N], const std::string& s) {
  for (size_t i = 0; i < N; ++i) {
    if (s == names[i]) return static_cast<int>(i);
  }
  return -1;
}

Result<std::vector<RuleRecord>> RulesFromJson(const std::string& text) {
  const Error corrupt(ErrorCode::kDataLoss, "corrupt rules_json in database");
  Json arr = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!arr.is_array()) return corrupt;
  std::vector<RuleRecord> out;
  for (const Json& j : arr) {
    if (!j.is_object() || !j.contains("pattern") || !j["pattern"].is_string() ||
        !j.contains("type") || !j["type"].is_string() || !j.contains("level") ||
        !j["level"].is_string() || !j.contains("priority") || !j["priority"].is_number_integer()) {
      return corrupt;
    }
    RuleRecord r;
    r.pattern = j["pattern"].get<std::string>();
    r.type = IndexOf(kRuleTypeNames, j["type"].get<std::string>());
    r.level = IndexOf(kLevelNames, j["level"].get<std::string>());
    int64_t prio = j["priority"].get<int64_t>();
    if (r.type < 0 || r.level < 0 || prio < std::numeric_limits<int32_t>::min() ||
        prio > std::numeric_limits<int32_t>::max()) {
      return corrupt;
    }
    r.priority = static_cast<int32_t>(prio);
    out.push_back(std::move(r));
  }
  return out;
}

Result<std::string> MapToJson(const std::map<std::string, std::string>& m, std::string_view what) {
  Json obj = Json::object();
  for (const auto& [k, v] : m) obj[k] = v;
  return Dump(obj, what);
}

Result<std::map<std::string, std::string>> MapFromJson(const std::string& text) {
  Json obj = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!obj.is_object()) return Error(ErrorCode::kDataLoss, "corrupt map in database");
  std::map<std::string, std::string> out;
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    if (!it.value().is_string()) return Error(ErrorCode::kDataLoss, "corrupt map in database");
    out.emplace(it.key(), it.value().get<std::string>());
  }
  return out;
}

std::string EgressToJson(const SandboxRecord& r) {
  Json allow = Json::array();
  for (const auto& rule : r.egress_allow) allow.push_back(rule);
  return Json({{"any_public", r.egress_any_public}, {"allow", allow}}).dump();
}

Status EgressFromJson(const std::string& text, SandboxRecord& r) {
  if (text.empty()) {  // a row from before migration 3
    r.egress_any_public = r.network;
    return OkStatus();
  }
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("allow") || !j["allow"].is_array()) {
    return Error(ErrorCode::kDataLoss, "corrupt egress policy in database");
  }
  r.egress_any_public = j.value("any_public", false);
  for (const auto& rule : j["allow"]) {
    if (!rule.is_string()) return Error(ErrorCode::kDataLoss, "corrupt egress rule in database");
    r.egress_allow.push_back(rule.get<std::string>());
  }
  return OkStatus();
}

constexpr char kSandboxColumns[] =
    "id, codebase_id, owner_id, rules_json, status, labels_json, created_at_ns, started_at_ns,"
    " stopped_at_ns, expires_at_ns, runtime, image, memory_bytes, cpu_quota, cpu_shares,"
    " pids_limit, error_reason, sync_mode, network, delta_quota_bytes, env_json, supervisor_pid,"
    " supervisor_start_ticks, supervisor_socket, runtime_state, updated_at_ns, delta_quota_inodes,"
    " host_uid, egress_json, ask_timeout_ms";

Result<SandboxRecord> ReadSandbox(const Statement& s) {
  SandboxRecord r;
  r.id = s.ColumnText(0);
  r.codebase_id = s.ColumnText(1);
  r.owner_id = s.ColumnText(2);
  AF_ASSIGN_OR_RETURN(r.rules, RulesFromJson(s.ColumnText(3)));
  AF_ASSIGN_OR_RETURN(r.status, ParseStatus(s.ColumnText(4)));
  AF_ASSIGN_OR_RETURN(r.labels, MapFromJson(s.ColumnText(5)));
  r.created_at_ns = s.ColumnInt(6);
  r.started_at_ns = s.ColumnInt(7);
  r.stopped_at_ns = s.ColumnInt(8);
  r.expires_at_ns = s.ColumnInt(9);
  r.runtime = s.ColumnText(10) == "docker" ? RuntimeKind::kDocker : RuntimeKind::kBwrap;
  r.image = s.ColumnText(11);
  r.resources.memory_bytes = s.ColumnInt(12);
  r.resources.cpu_quota = s.ColumnInt(13);
  r.resources.cpu_shares = s.ColumnInt(14);
  r.resources.pids_limit = s.ColumnInt(15);
  r.error_reason = s.ColumnText(16);
  r.sync_mode = s.ColumnText(17);
  r.network = s.ColumnInt(18) != 0;
  r.delta_quota_bytes = s.ColumnInt(19);
  AF_ASSIGN_OR_RETURN(r.env, MapFromJson(s.ColumnText(20)));
  r.supervisor_pid = s.ColumnInt(21);
  r.supervisor_start_ticks = s.ColumnInt(22);
  r.supervisor_socket = s.ColumnText(23);
  r.runtime_state = s.ColumnText(24);
  r.updated_at_ns = s.ColumnInt(25);
  r.delta_quota_inodes = s.ColumnInt(26);
  r.host_uid = s.ColumnInt(27);
  AF_RETURN_IF_ERROR(EgressFromJson(s.ColumnText(28), r));
  r.ask_timeout_ms = s.ColumnInt(29);
  return r;
}

Error SandboxNotFound(std::string_view id) {
  return Error(ErrorCode::kNotFound, "sandbox " + std::string(id) + " not found");
}

// ",running,stopped," for the instr() membership test; "" = any status.
std::string StatusSet(const std::vector<SandboxStatus>& statuses) {
  if (statuses.empty()) return "";
  std::string out = ",";
  for (SandboxStatus s : statuses) {
    out += StatusName(s);
    out += ',';
  }
  return out;
}

constexpr char kFilterSql[] =
    " (?1 = '' OR codebase_id = ?1) AND (?2 = '' OR owner_id = ?2)"
    " AND (?3 = '' OR instr(?3, ',' || status || ',') > 0)";

Status BindFilter(Statement& s, const SandboxFilter& f) {
  AF_RETURN_IF_ERROR(s.BindText(1, f.codebase_id));
  AF_RETURN_IF_ERROR(s.BindText(2, f.owner_id));
  AF_RETURN_IF_ERROR(s.BindText(3, StatusSet(f.statuses)));
  return OkStatus();
}

Status ValidateFilter(const SandboxFilter& f) {
  if (!f.codebase_id.empty()) AF_RETURN_IF_ERROR(ValidateCodebaseId(f.codebase_id));
  for (SandboxStatus s : f.statuses) {
    if (!ValidStatus(s)) return Error(ErrorCode::kInvalidArgument, "bad sandbox status filter");
  }
  return OkStatus();
}

}  // namespace

Status MetadataStore::WriteSandboxLocked(const SandboxRecord& rec, bool insert) {
  AF_ASSIGN_OR_RETURN(std::string rules, RulesToJson(rec.rules));
  AF_ASSIGN_OR_RETURN(std::string labels, MapToJson(rec.labels, "labels"));
  AF_ASSIGN_OR_RETURN(std::string env, MapToJson(rec.env, "env"));
  static const std::string insert_sql =
      std::string("INSERT INTO sandboxes(") + kSandboxColumns +
      ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,"
      " ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30)";
  // codebase_id and created_at are fixed at creation: ?2 and ?7 are bound but not used.
  static const std::string update_sql =
      "UPDATE sandboxes SET owner_id = ?3, rules_json = ?4, status = ?5, labels_json = ?6,"
      " started_at_ns = ?8, stopped_at_ns = ?9, expires_at_ns = ?10, runtime = ?11, image = ?12,"
      " memory_bytes = ?13, cpu_quota = ?14, cpu_shares = ?15, pids_limit = ?16,"
      " error_reason = ?17, sync_mode = ?18, network = ?19, delta_quota_bytes = ?20,"
      " env_json = ?21, supervisor_pid = ?22, supervisor_start_ticks = ?23,"
      " supervisor_socket = ?24, runtime_state = ?25, updated_at_ns = ?26,"
      " delta_quota_inodes = ?27, host_uid = ?28, egress_json = ?29, ask_timeout_ms = ?30"
      " WHERE id = ?1 AND (?2 = ?2) AND (?7 = ?7)";
  AF_ASSIGN_OR_RETURN(ScopedStmt s, Stmt(insert ? insert_sql.c_str() : update_sql.c_str()));
  AF_RETURN_IF_ERROR(s->BindText(1, rec.id));
  AF_RETURN_IF_ERROR(s->BindText(2, rec.codebase_id));
  AF_RETURN_IF_ERROR(s->BindText(3, rec.owner_id));
  AF_RETURN_IF_ERROR(s->BindText(4, rules));
  AF_RETURN_IF_ERROR(s->BindText(5, StatusName(rec.status)));
  AF_RETURN_IF_ERROR(s->BindText(6, labels));
  AF_RETURN_IF_ERROR(s->BindInt(7, rec.created_at_ns));
  AF_RETURN_IF_ERROR(s->BindInt(8, rec.started_at_ns));
  AF_RETURN_IF_ERROR(s->BindInt(9, rec.stopped_at_ns));
  AF_RETURN_IF_ERROR(s->BindInt(10, rec.expires_at_ns));
  AF_RETURN_IF_ERROR(s->BindText(11, rec.runtime == RuntimeKind::kDocker ? "docker" : "bwrap"));
  AF_RETURN_IF_ERROR(s->BindText(12, rec.image));
  AF_RETURN_IF_ERROR(s->BindInt(13, rec.resources.memory_bytes));
  AF_RETURN_IF_ERROR(s->BindInt(14, rec.resources.cpu_quota));
  AF_RETURN_IF_ERROR(s->BindInt(15, rec.resources.cpu_shares));
  AF_RETURN_IF_ERROR(s->BindInt(16, rec.resources.pids_limit));
  AF_RETURN_IF_ERROR(s->BindText(17, rec.error_reason));
  AF_RETURN_IF_ERROR(s->BindText(18, rec.sync_mode));
  AF_RETURN_IF_ERROR(s->BindInt(19, rec.network ? 1 : 0));
  AF_RETURN_IF_ERROR(s->BindInt(20, rec.delta_quota_bytes));
  AF_RETURN_IF_ERROR(s->BindText(21, env));
  AF_RETURN_IF_ERROR(s->BindInt(22, rec.supervisor_pid));
  AF_RETURN_IF_ERROR(s->BindInt(23, rec.supervisor_start_ticks));
  AF_RETURN_IF_ERROR(s->BindText(24, rec.supervisor_socket));
  AF_RETURN_IF_ERROR(s->BindText(25, rec.runtime_state));
  AF_RETURN_IF_ERROR(s->BindInt(26, internal::NowNs()));
  AF_RETURN_IF_ERROR(s->BindInt(27, rec.delta_quota_inodes));
  AF_RETURN_IF_ERROR(s->BindInt(28, rec.host_uid));
  AF_RETURN_IF_ERROR(s->BindText(29, EgressToJson(rec)));
  AF_RETURN_IF_ERROR(s->BindInt(30, rec.ask_timeout_ms));
  return s->Run();
}

Status MetadataStore::CreateSandbox(const SandboxRecord& rec) {
  AF_RETURN_IF_ERROR(ValidateSandboxId(rec.id));
  AF_RETURN_IF_ERROR(ValidateCodebaseId(rec.codebase_id));
  if (!ValidStatus(rec.status)) return Error(ErrorCode::kInvalidArgument, "bad sandbox status");
  std::lock_guard lock(mu_);
  {
    AF_ASSIGN_OR_RETURN(ScopedStmt s, Stmt("SELECT 1 FROM codebases WHERE id = ?1"));
    AF_RETURN_IF_ERROR(s->BindText(1, rec.codebase_id));
    AF_ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) return Error(ErrorCode::kNotFound, "codebase " + rec.codebase_id + " not found");
  }
  auto st = WriteSandboxLocked(rec, /*insert=*/true);
  if (!st.ok() && st.error().code() == ErrorCode::kAlreadyExists) {
    return Error(ErrorCode::kAlreadyExists, "sandbox " + rec.id + " already exists");
  }
  return st;
}

Result<SandboxRecord> MetadataStore::GetSandboxLocked(std::string_view id) {
  static const std::string sql =
      std::string("SELECT ") + kSandboxColumns + " FROM sandboxes WHERE id = ?1";
  AF_ASSIGN_OR_RETURN(ScopedStmt s, Stmt(sql.c_str()));
  AF_RETURN_IF_ERROR(s->BindText(1, id));
  AF_ASSIGN_OR_RETURN(bool row, s->Step());
  if (!row) return SandboxNotFound(id);
  return ReadSandbox(*s);
}

Result<SandboxRecord> MetadataStore::GetSandbox(std::string_view id) {
  AF_RETURN_IF_ERROR(ValidateSandboxId(id));
  std::lock_guard lock(mu_);
  return GetSandboxLocked(id);
}

Status MetadataStore::UpdateSandbox(const SandboxRecord& rec) {
  AF_RETURN_IF_ERROR(ValidateSandboxId(rec.id));
  if (!ValidStatus(rec.status)) return Error(ErrorCode::kInvalidArgument, "bad sandbox status");
  std::lock_guard lock(mu_);
  AF_RETURN_IF_ERROR(WriteSandboxLocked(rec, /*insert=*/false));
  if (db_.Changes() == 0) return SandboxNotFound(rec.id);
  return OkStatus();
}

Status MetadataStore::TransitionSandbox(std::string_view id, SandboxStatus expected,
                                        SandboxStatus next, std::string_view error_reason,
                                        int64_t now_ns) {
  AF_RETURN_IF_ERROR(ValidateSandboxId(id));
  if (!ValidStatus(expected) || !ValidStatus(next)) {
    return Error(ErrorCode::kInvalidArgument, "bad sandbox status");
  }
  std::lock_guard lock(mu_);
  {
    AF_ASSIGN_OR_RETURN(
        ScopedStmt s,
        Stmt("UPDATE sandboxes SET status = ?3,"
             " error_reason = CASE WHEN ?3 = 'error' THEN ?4 ELSE '' END,"
             " started_at_ns = CASE WHEN ?3 = 'running' THEN ?5 ELSE started_at_ns END,"
             " stopped_at_ns = CASE WHEN ?3 = 'stopped' THEN ?5 ELSE stopped_at_ns END,"
             " updated_at_ns = ?6 WHERE id = ?1 AND status = ?2"));
    AF_RETURN_IF_ERROR(s->BindText(1, id));
    AF_RETURN_IF_ERROR(s->BindText(2, StatusName(expected)));
    AF_RETURN_IF_ERROR(s->BindText(3, StatusName(next)));
    AF_RETURN_IF_ERROR(s->BindText(4, error_reason));
    AF_RETURN_IF_ERROR(s->BindInt(5, now_ns));
    AF_RETURN_IF_ERROR(s->BindInt(6, internal::NowNs()));
    AF_RETURN_IF_ERROR(s->Run());
  }
  if (db_.Changes() == 1) return OkStatus();
  AF_ASSIGN_OR_RETURN(SandboxRecord cur, GetSandboxLocked(id));  // kNotFound if it is gone
  return Error(ErrorCode::kFailedPrecondition, "sandbox " + std::string(id) + " is " +
                                                   std::string(StatusName(cur.status)) + ", not " +
                                                   std::string(StatusName(expected)));
}

Status MetadataStore::DeleteSandbox(std::string_view id) {
  AF_RETURN_IF_ERROR(ValidateSandboxId(id));
  std::lock_guard lock(mu_);
  AF_ASSIGN_OR_RETURN(ScopedStmt s, Stmt("DELETE FROM sandboxes WHERE id = ?1"));
  AF_RETURN_IF_ERROR(s->BindText(1, id));
  AF_RETURN_IF_ERROR(s->Run());
  if (db_.Changes() == 0) return SandboxNotFound(id);
  // The audit file the offset counted is removed with the sandbox.
  AF_ASSIGN_OR_RETURN(ScopedStmt o, Stmt("DELETE FROM audit_ingest WHERE sandbox_id = ?1"));
  AF_RETURN_IF_ERROR(o->BindText(1, id));
  AF_RETURN_IF_ERROR(o->Run());
  return OkStatus();
}

Result<std::vector<SandboxRecord>> MetadataStore::QuerySandboxesLocked(const SandboxFilter& filter,
                                                                       int64_t after_created,
                                                                       const std::string& after_id,
                                                                       int64_t limit) {
  static const std::string sql = std::string("SELECT ") + kSandboxColumns +
                                 " FROM sandboxes WHERE" + kFilterSql +
                                 " AND (created_at_ns, id) > (?4, ?5)"
                                 " ORDER BY created_at_ns, id LIMIT ?6";
  AF_ASSIGN_OR_RETURN(ScopedStmt s, Stmt(sql.c_str()));
  AF_RETURN_IF_ERROR(BindFilter(*s, filter));
  AF_RETURN_IF_ERROR(s->BindInt(4, after_created));
  AF_RETURN_IF_ERROR(s->BindText(5, after_id));
  AF_RETURN_IF_ERROR(s->BindInt(6, limit));
  std::vector<SandboxRecord> out;
  while (true) {
    AF_ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) break;
    AF_ASSIGN_OR_RETURN(SandboxRecord rec, ReadSandbox(*s));
    out.push_back(std::move(rec));
  }
  return out;
}

Result<Page<SandboxRecord>> MetadataStore::ListSandboxes(const SandboxFilter& filter,
                                                         const PageRequest& page) {
  AF_RETURN_IF_ERROR(ValidateFilter(filter));
  AF_ASSIGN_OR_RETURN(int32_t size, EffectivePageSize(page.page_size));
  int64_t after_created = std::numeric_limits<int64_t>::min();
  std::string after_id;
  if (!page.page_token.empty()) {
    AF_ASSIGN_OR_RETURN(auto key, DecodePageToken(page.page_token));
    after_created = key.first;
    after_id = std::move(key.second);
  }
  std::lock_guard lock(mu_);
  Page<SandboxRecord> out;
  AF_ASSIGN_OR_RETURN(out.items,
                      QuerySandboxesLocked(filter, after_created, after_id, int64_t{size} + 1));
  if (out.items.size() > static_cast<size_t>(size)) {
    out.items.pop_back();
    out.next_page_token = EncodePageToken(out.items.back().created_at_ns, out.items.back().id);
  }
  return out;
}

Result<std::vector<SandboxRecord>> MetadataStore::AllSandboxes(const SandboxFilter& filter) {
  AF_RETURN_IF_ERROR(ValidateFilter(filter));
  std::lock_guard lock(mu_);
  return QuerySandboxesLocked(filter, std::numeric_limits<int64_t>::min(), "",
                              std::numeric_limits<int64_t>::max());
}

Result<int64_t> MetadataStore::CountSandboxes(const SandboxFilter& filter) {
  AF_RETURN_IF_ERROR(ValidateFilter(filter));
  std::lock_guard lock(mu_);
  static const std::string sql = std::string("SELECT COUNT(*) FROM sandboxes WHERE") + kFilterSql;
  AF_ASSIGN_OR_RETURN(ScopedStmt s, Stmt(sql.c_str()));
  AF_RETURN_IF_ERROR(BindFilter(*s, filter));
  AF_ASSIGN_OR_RETURN(bool row, s->Step());
  return row ? s->ColumnInt(0) : 0;
}

Result<std::vector<SandboxRecord>> MetadataStore::ListExpiredSandboxes(int64_t now_ns) {
  std::lock_guard lock(mu_);
  static const std::string sql = std::string("SELECT ") + kSandboxColumns +
                                 " FROM sandboxes WHERE expires_at_ns > 0 AND expires_at_ns <= ?1"
                                 " ORDER BY expires_at_ns, id";
  AF_ASSIGN_OR_RETURN(ScopedStmt s, Stmt(sql.c_str()));
  AF_RETURN_IF_ERROR(s->BindInt(1, now_ns));
  std::vector<SandboxRecord> out;
  while (true) {
    AF_ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) break;
    AF_ASSIGN_OR_RETURN(SandboxRecord rec, ReadSandbox(*s));
    out.push_back(std::move(rec));
  }
  return out;
}

}  // namespace agentfense::store

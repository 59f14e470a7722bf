// The SQLite schema as an ordered list of migrations. Migration N is applied once, inside a
// transaction, and recorded in schema_migrations; never edit a released migration, append one.
#pragma once

#include <string_view>
#include <vector>

namespace agentfense::store {

struct Migration {
  int version;
  std::string_view sql;
};

const std::vector<Migration>& Migrations();

}  // namespace agentfense::store

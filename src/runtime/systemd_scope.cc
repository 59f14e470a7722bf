#include "runtime/systemd_scope.h"

#include <signal.h>
#include <unistd.h>

#include <cstring>
#include <memory>

#include "base/shared_library.h"

namespace agentfense::runtime {
namespace {

// The parts of <systemd/sd-bus.h> we use, declared here because the library is loaded at run
// time (see the header). sd-bus's C ABI is stable (symbol version LIBSYSTEMD_209 and later).
struct SdBus;
struct SdBusMessage;
struct SdBusError {
  const char* name = nullptr;
  const char* message = nullptr;
  int need_free = 0;
};

constexpr uint64_t kCallTimeoutUs = 10'000'000;

// The sd-bus functions, resolved from libsystemd.so.0. The handle is never closed: the table is
// immutable once built and shared by every caller (dlopen is reference counted and thread-safe).
struct SdBusApi {
  int (*bus_new)(SdBus**);
  int (*bus_set_address)(SdBus*, const char*);
  int (*bus_start)(SdBus*);
  int (*bus_open_system)(SdBus**);
  SdBus* (*bus_flush_close_unref)(SdBus*);
  int (*message_new_method_call)(SdBus*, SdBusMessage**, const char*, const char*, const char*,
                                 const char*);
  int (*message_append)(SdBusMessage*, const char*, ...);
  int (*message_open_container)(SdBusMessage*, char, const char*);
  int (*message_close_container)(SdBusMessage*);
  int (*call)(SdBus*, SdBusMessage*, uint64_t, SdBusError*, SdBusMessage**);
  SdBusMessage* (*message_unref)(SdBusMessage*);
  void (*error_free)(SdBusError*);
};

Result<const SdBusApi*> LoadApi() {
  // A function-local static: loaded once, then read-only (no mutable global state).
  static const Result<SdBusApi> api = []() -> Result<SdBusApi> {
    constexpr const char* kLib = "libsystemd.so.0";
    AF_ASSIGN_OR_RETURN(void* lib, LoadSharedLibrary(kLib));
    SdBusApi a{};
    AF_RETURN_IF_ERROR(ResolveSymbol(lib, kLib, "sd_bus_new", &a.bus_new));
    AF_RETURN_IF_ERROR(ResolveSymbol(lib, kLib, "sd_bus_set_address", &a.bus_set_address));
    AF_RETURN_IF_ERROR(ResolveSymbol(lib, kLib, "sd_bus_start", &a.bus_start));
    AF_RETURN_IF_ERROR(ResolveSymbol(lib, kLib, "sd_bus_open_system", &a.bus_open_system));
    AF_RETURN_IF_ERROR(
        ResolveSymbol(lib, kLib, "sd_bus_flush_close_unref", &a.bus_flush_close_unref));
    AF_RETURN_IF_ERROR(ResolveSymbol(lib, kLib, "sd_bus_message_new_method_call",
                                     &a.message_new_method_call));
    AF_RETURN_IF_ERROR(ResolveSymbol(lib, kLib, "sd_bus_message_append", &a.message_append));
    AF_RETURN_IF_ERROR(
        ResolveSymbol(lib, kLib, "sd_bus_message_open_container", &a.message_open_container));
    AF_RETURN_IF_ERROR(
        ResolveSymbol(lib, kLib, "sd_bus_message_close_container", &a.message_close_container));
    AF_RETURN_IF_ERROR(ResolveSymbol(lib, kLib, "sd_bus_call", &a.call));
    AF_RETURN_IF_ERROR(ResolveSymbol(lib, kLib, "sd_bus_message_unref", &a.message_unref));
    AF_RETURN_IF_ERROR(ResolveSymbol(lib, kLib, "sd_bus_error_free", &a.error_free));
    return a;
  }();
  if (!api.ok()) return api.error();
  return &*api;
}

// One connection, closed on destruction. Not shared between threads (sd-bus connections are
// not thread-safe); each operation opens its own: a scope starts once per sandbox start.
class Bus {
 public:
  static Result<Bus> Connect(const std::string& address) {
    AF_ASSIGN_OR_RETURN(const SdBusApi* api, LoadApi());
    Bus b(api);
    if (!address.empty()) {
      int rc = api->bus_new(&b.bus_);
      if (rc >= 0) rc = api->bus_set_address(b.bus_, address.c_str());
      if (rc >= 0) rc = api->bus_start(b.bus_);
      if (rc < 0) {
        return Error(ErrorCode::kUnavailable, "cannot connect to systemd at " + address, -rc);
      }
      return b;
    }
    // As root, systemd's private socket: no dbus-daemon in the path (hosts and containers that
    // run systemd without one work too), and no bus policy to pass.
    if (::geteuid() == 0 && ::access("/run/systemd/private", F_OK) == 0) {
      int rc = api->bus_new(&b.bus_);
      if (rc >= 0) rc = api->bus_set_address(b.bus_, "unix:path=/run/systemd/private");
      if (rc >= 0) rc = api->bus_start(b.bus_);
      if (rc >= 0) return b;
      b.Close();
    }
    int rc = api->bus_open_system(&b.bus_);
    if (rc < 0) {
      return Error(ErrorCode::kUnavailable, "cannot connect to systemd over D-Bus", -rc);
    }
    return b;
  }
  Bus(Bus&& o) noexcept : api_(o.api_), bus_(std::exchange(o.bus_, nullptr)) {}
  Bus& operator=(Bus&&) = delete;
  ~Bus() { Close(); }

  // Calls `member` of org.freedesktop.systemd1.Manager; `fill` appends the arguments.
  template <typename Fill>
  Status CallManager(const char* member, Fill fill) {
    SdBusMessage* m = nullptr;
    int rc = api_->message_new_method_call(bus_, &m, "org.freedesktop.systemd1",
                                           "/org/freedesktop/systemd1",
                                           "org.freedesktop.systemd1.Manager", member);
    if (rc < 0) return Error::FromErrno(-rc, std::string("sd-bus: new call ") + member);
    std::unique_ptr<SdBusMessage, SdBusMessage* (*)(SdBusMessage*)> msg(m, api_->message_unref);
    rc = fill(*api_, m);
    if (rc < 0) return Error::FromErrno(-rc, std::string("sd-bus: arguments of ") + member);
    SdBusError err;
    SdBusMessage* reply = nullptr;
    rc = api_->call(bus_, m, kCallTimeoutUs, &err, &reply);
    if (reply != nullptr) api_->message_unref(reply);
    if (rc >= 0) return OkStatus();
    std::string name = err.name ? err.name : "";
    std::string text =
        std::string(member) + ": " + (err.message ? err.message : std::strerror(-rc));
    api_->error_free(&err);
    if (name == "org.freedesktop.systemd1.UnitExists") {
      return Error(ErrorCode::kAlreadyExists, text);
    }
    if (name == "org.freedesktop.systemd1.NoSuchUnit") return Error(ErrorCode::kNotFound, text);
    return Error(ErrorCode::kFailedPrecondition, "systemd refused " + text + " (" + name + ")",
                 -rc);
  }

 private:
  explicit Bus(const SdBusApi* api) : api_(api) {}
  void Close() {
    if (bus_ != nullptr) api_->bus_flush_close_unref(bus_);
    bus_ = nullptr;
  }
  const SdBusApi* api_;
  SdBus* bus_ = nullptr;
};

int AppendProperty(const SdBusApi& api, SdBusMessage* m, const UnitProperty& p) {
  switch (p.type) {
    case 't':
      return api.message_append(m, "(sv)", p.name.c_str(), "t", p.number);
    case 'i':
      return api.message_append(m, "(sv)", p.name.c_str(), "i",
                                static_cast<int32_t>(static_cast<uint32_t>(p.number)));
    case 'b':
      return api.message_append(m, "(sv)", p.name.c_str(), "b", p.flag ? 1 : 0);
    default:
      return api.message_append(m, "(sv)", p.name.c_str(), "s", p.text.c_str());
  }
}

}  // namespace

std::vector<UnitProperty> PlanScopeProperties(const std::string& sandbox_id,
                                              const CgroupLimits& limits, CgroupVersion version) {
  std::vector<UnitProperty> p = {
      UnitProperty::Str("Description", "AgentFense sandbox " + sandbox_id),
      UnitProperty::Bool("Delegate", true),
      // Unloaded once stopped, also after a failure: nothing named after a sandbox lingers.
      UnitProperty::Str("CollectMode", "inactive-or-failed"),
      // A stop (ours, or an administrator's `systemctl stop`) kills at once: the sandbox's own
      // agent already had its chance to end its commands.
      UnitProperty::I32("KillSignal", SIGKILL),
  };
  const bool v2 = version == CgroupVersion::kV2;
  if (limits.memory_bytes) {
    p.push_back(UnitProperty::U64(v2 ? "MemoryMax" : "MemoryLimit", limits.memory_bytes));
    if (v2) p.push_back(UnitProperty::U64("MemorySwapMax", 0));
  }
  if (limits.pids_max) p.push_back(UnitProperty::U64("TasksMax", limits.pids_max));
  if (limits.cpu_millis) {
    // CPU time per wall-clock second: 1000 millis (one CPU) = 1 s = 1'000'000 us.
    p.push_back(UnitProperty::U64("CPUQuotaPerSecUSec", uint64_t{limits.cpu_millis} * 1000));
  }
  if (limits.cpu_shares) {
    if (v2) {
      p.push_back(UnitProperty::U64("CPUWeight", CpuWeightFromShares(limits.cpu_shares)));
    } else {
      p.push_back(UnitProperty::U64("CPUShares", limits.cpu_shares));
    }
  }
  return p;
}

Status StartTransientScope(const std::string& unit, pid_t pid,
                           const std::vector<UnitProperty>& properties,
                           const std::string& bus_address) {
  AF_ASSIGN_OR_RETURN(Bus bus, Bus::Connect(bus_address));
  return bus.CallManager("StartTransientUnit", [&](const SdBusApi& api, SdBusMessage* m) {
    // StartTransientUnit(s name, s mode, a(sv) properties, a(sa(sv)) auxiliary units)
    int rc = api.message_append(m, "ss", unit.c_str(), "fail");
    if (rc >= 0) rc = api.message_open_container(m, 'a', "(sv)");
    if (rc >= 0) rc = api.message_append(m, "(sv)", "PIDs", "au", 1, static_cast<uint32_t>(pid));
    for (const auto& p : properties) {
      if (rc >= 0) rc = AppendProperty(api, m, p);
    }
    if (rc >= 0) rc = api.message_close_container(m);
    if (rc >= 0) rc = api.message_append(m, "a(sa(sv))", 0);
    return rc;
  });
}

Status StopUnit(const std::string& unit, const std::string& bus_address) {
  AF_ASSIGN_OR_RETURN(Bus bus, Bus::Connect(bus_address));
  Status st = bus.CallManager("StopUnit", [&](const SdBusApi& api, SdBusMessage* m) {
    return api.message_append(m, "ss", unit.c_str(), "replace");
  });
  if (!st.ok() && st.error().code() == ErrorCode::kNotFound) return OkStatus();
  return st;
}

}  // namespace agentfense::runtime

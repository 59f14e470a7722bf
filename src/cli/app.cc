#include "cli/app.h"

#include <CLI/CLI.hpp>
#include <exception>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cli/client_commands.h"
#include "cli/command_set.h"
#include "cli/exit_codes.h"
#include "cli/local_sandbox.h"
#include "cli/mount_commands.h"
#include "cli/policy_commands.h"
#include "cli/sandbox_commands.h"

#ifndef AF_VERSION
#define AF_VERSION "unknown"
#endif

namespace agentfense::cli {
namespace {

constexpr char kExitFooter[] =
    "Exit status: 0 success; 1 internal or environment failure; 2 usage error or invalid input\n"
    "(bad rule, path, preset or rules file). Errors are printed on stderr.";

constexpr char kRunExitFooter[] =
    "Exit status: the command's own status (128+N when signal N killed it); 122 the sandbox\n"
    "could not start or failed (bwrap missing, dockerd down...); 123 the changes could not all\n"
    "be synced (the delta is kept, its path printed); 124 --timeout expired; 125 usage error or\n"
    "invalid input (nothing started); 130/143/129 interrupted by SIGINT/SIGTERM/SIGHUP (after\n"
    "cleanup: sandbox stopped, mount gone). Errors are printed on stderr.";

constexpr char kRuleSyntax[] =
    "Rules are PATTERN=LEVEL[@PRIORITY] with LEVEL none|view|read|write (default priority 0),\n"
    "e.g. '**/*.py=read' or '/secrets/**=none@100'. Rules files hold one rule per line; blank\n"
    "lines and lines starting with '#' are ignored. Rules are merged in the order --preset,\n"
    "--rules-file, --rule; on a full tie the later rule wins.";

constexpr char kRunUsage[] =
    "agentfense run [flags] DIR -- COMMAND [ARG...]\n"
    "Mounts DIR with the policy at /workspace in a fresh sandbox, runs COMMAND there (streaming\n"
    "its output), and exits with its status. Every write lands in a copy-on-write delta; at the\n"
    "end --sync (default) applies it to DIR and prints what was added/modified/deleted,\n"
    "--discard drops it, --keep-delta DIR2 leaves it in DIR2. An interrupted run (Ctrl-C) applies\n"
    "nothing and keeps the delta (its path is printed). Without policy flags the agent-safe\n"
    "preset applies.";

constexpr char kShellUsage[] =
    "agentfense shell [flags] DIR\n"
    "On a terminal: an interactive shell on a real terminal inside the sandbox (raw mode, job\n"
    "control, Ctrl-C goes to the shell); `exit` or Ctrl-D leaves with the shell's status, then\n"
    "the changes are handled as with `run`. Without a terminal on stdin and stdout: line mode,\n"
    "each line runs in one persistent shell at /workspace (a trailing backslash continues it).";

constexpr char kMcpUsage[] =
    "agentfense mcp [flags] DIR\n"
    "An MCP server on stdin/stdout (for an agent host's mcpServers entry) over a sandbox of DIR,\n"
    "started as `run` starts one: its tools (run_command, read_file, write_file, edit_file,\n"
    "list_files, explain_permission, changes) all act inside the sandbox under one policy. When\n"
    "the host closes our stdin the changes are handled as with `run` (--sync by default). Nothing\n"
    "but MCP messages is written to stdout; the summary goes to stderr (--json too).";

constexpr char kMountUsage[] =
    "agentfense mount [flags] SOURCE MOUNTPOINT\n"
    "Serves the permission filesystem (no sandbox; writes go straight to SOURCE, or with\n"
    "--delta DIR into a copy-on-write delta in DIR) in the\n"
    "foreground until Ctrl-C or `agentfense umount MOUNTPOINT`; -d returns once it is mounted.\n"
    "The mount serves you alone: the kernel refuses every other user, root included.\n"
    "--allow-other serves every local user, with the host's permission bits enforced for them\n"
    "(as root; an ordinary user needs user_allow_other in /etc/fuse.conf).";

// The policy flags, one syntax everywhere (policy explain, run, shell, mount).
struct PolicyFlags {
  std::string preset;
  std::string rules_file;
  std::vector<std::string> rules;
  CLI::Option* preset_opt = nullptr;
  CLI::Option* file_opt = nullptr;

  void Add(CLI::App* app) {
    preset_opt = app->add_option("--preset", preset, "Start from a preset (see `policy presets`)")
                     ->type_name("NAME");
    app->add_option("--rule", rules, "Add a rule PATTERN=LEVEL[@PRIORITY] (repeatable)")
        ->allow_extra_args(false)
        ->type_name("PATTERN=LEVEL[@PRI]");
    file_opt = app->add_option("--rules-file", rules_file, "Add the rules of FILE (one per line)")
                   ->type_name("FILE");
  }
  RuleSources Sources() const {
    RuleSources s;
    if (preset_opt->count() > 0) s.preset = preset;
    if (file_opt->count() > 0) s.rules_file = rules_file;
    s.rule_specs = rules;
    return s;
  }
};

struct SandboxCli {
  PolicyFlags policy;
  SandboxFlags flags;
  bool sync = false, discard = false;
  CLI::Option* keep_delta = nullptr;

  void Add(CLI::App* app) {
    policy.Add(app);
    app->add_option("--runtime", flags.runtime, "Sandbox runtime: bwrap (default) or docker")
        ->type_name("bwrap|docker");
    app->add_option("--image", flags.image, "Container image (docker runtime)")->type_name("IMG");
    app->add_option("--memory", flags.memory, "Memory limit, e.g. 512M, 2G")->type_name("SIZE");
    app->add_option("--pids", flags.pids, "Maximum number of processes")->type_name("N");
    app->add_option("--cpus", flags.cpus, "CPU limit in CPUs, e.g. 0.5, 2")->type_name("N");
    app->add_flag("--network", flags.network,
                  "Network on: every public destination (default: no network; see --allow-net)");
    app->add_option("--allow-net", flags.allow_net,
                    "Allow egress to HOST[:PORTS] (*.domain, IP, CIDR, udp:...; repeatable). "
                    "Implies network; only what is listed is reachable")
        ->allow_extra_args(false)
        ->type_name("HOST[:PORT]");
    app->add_option("--dns-server", flags.dns_servers,
                    "Upstream resolver of the sandbox's DNS (default: the host's resolv.conf)")
        ->allow_extra_args(false)
        ->type_name("IP[:PORT]");
    app->add_option("--public-cidr", flags.public_cidrs,
                    "Treat a special-purpose range as public (a lab network; repeatable)")
        ->allow_extra_args(false)
        ->type_name("CIDR");
    app->add_option("--env", flags.env, "Set NAME=VALUE in the sandbox (repeatable)")
        ->allow_extra_args(false)
        ->type_name("NAME=VALUE");
    app->add_option("--workdir", flags.workdir,
                    "Working directory in the sandbox (relative: under /workspace)")
        ->type_name("DIR");
    auto* s = app->add_flag("--sync", sync, "Apply the changes to DIR at the end (default)");
    auto* d = app->add_flag("--discard", discard, "Drop the changes at the end; DIR is untouched");
    keep_delta = app->add_option("--keep-delta", flags.keep_delta_dir,
                                 "Leave the changes unapplied in DIR2 (created; must be empty)")
                     ->type_name("DIR2");
    s->excludes(d)->excludes(keep_delta);
    d->excludes(keep_delta);
    app->add_option("--bwrap-path", flags.bwrap_path,
                    "bubblewrap executable (default /usr/bin/bwrap)")
        ->type_name("PATH");
    app->add_option("--docker-host", flags.docker_host,
                    "Docker daemon (default unix:///var/run/docker.sock)")
        ->type_name("URL");
    app->add_flag("--ask{prompt}", flags.ask,
                  "Answer accesses to `ask` paths on this terminal; --ask=deny denies them (the "
                  "default without --ask)")
        ->type_name("[=deny]");
    app->add_flag("-q,--quiet", flags.quiet, "No change summary on stderr");
    app->add_flag("--json", flags.json,
                  "Print a JSON summary (status, changes) on stdout at the end");
  }
  SandboxFlags Finish() {
    flags.sources = policy.Sources();
    flags.sync = discard                   ? SyncMode::kDiscard
                 : keep_delta->count() > 0 ? SyncMode::kKeepDelta
                                           : SyncMode::kSync;
    return flags;
  }
};

// The command tree as JSON, for the build step that generates the shell completions and the man
// page from the same definitions as --help (gen_cli_docs.py).
nlohmann::ordered_json TreeJson(const CLI::App* app, const std::string& path) {
  nlohmann::ordered_json j;
  j["path"] = path;
  j["description"] = app->get_description();
  j["footer"] = app->get_footer();
  j["options"] = nlohmann::ordered_json::array();
  j["positionals"] = nlohmann::ordered_json::array();
  for (const CLI::Option* opt : app->get_options()) {
    if (opt->get_positional()) {
      j["positionals"].push_back(
          {{"name", opt->get_name()}, {"description", opt->get_description()}});
      continue;
    }
    nlohmann::ordered_json o;
    o["names"] = nlohmann::ordered_json::array();
    for (const auto& s : opt->get_snames()) o["names"].push_back("-" + s);
    for (const auto& l : opt->get_lnames()) o["names"].push_back("--" + l);
    o["takes_value"] = opt->get_expected_min() > 0;
    o["description"] = opt->get_description();
    j["options"].push_back(o);
  }
  j["subcommands"] = nlohmann::ordered_json::array();
  for (const CLI::App* sub : app->get_subcommands({})) {
    if (sub->get_group().empty()) continue;  // hidden
    j["subcommands"].push_back(
        TreeJson(sub, path.empty() ? sub->get_name() : path + " " + sub->get_name()));
  }
  return j;
}

}  // namespace

int RunCli(int argc, const char* const* argv, std::ostream& out, std::ostream& err) {
  // CLI11 reports everything, including --help, by exception; nothing may escape main.
  try {
    // Everything after the first "--" is a COMMAND (run, sandbox exec, session exec): it never
    // goes through option parsing, so its own flags cannot be mistaken for ours.
    int parse_argc = argc;
    bool dashdash = false;
    std::vector<std::string> trailing;
    for (int i = 1; i < argc; ++i) {
      if (std::string_view(argv[i]) == "--") {
        parse_argc = i;
        dashdash = true;
        for (int j = i + 1; j < argc; ++j) trailing.emplace_back(argv[j]);
        break;
      }
    }
    const bool run_like =
        argc > 1 && (std::string_view(argv[1]) == "run" || std::string_view(argv[1]) == "shell" ||
                     std::string_view(argv[1]) == "mcp");

    CLI::App app("agentfense: least-privilege filesystem sandbox for AI agents", "agentfense");
    app.footer(kExitFooter);
    app.set_version_flag("--version", std::string("agentfense ") + AF_VERSION);
    app.require_subcommand(1);
    CommandSet commands;

    // --- policy ---
    CLI::App* policy =
        commands.Sub(&app, "policy", "Inspect and validate permission rules offline", kExitFooter);
    policy->require_subcommand(1);
    {
      auto p = std::make_shared<PolicyFlags>();
      auto o = std::make_shared<ExplainOptions>();
      CLI::App* explain = commands.Sub(
          policy, "explain", "Show the level each workspace path gets and the rule that decides it",
          std::string(kRuleSyntax) + "\n\n" + kExitFooter);
      p->Add(explain);
      explain->add_flag("--json", o->json, "Print JSON instead of a table");
      explain->add_flag("-v,--verbose", o->verbose,
                        "Also list every matching rule and why the winner wins");
      explain->add_option("paths", o->paths, "Workspace paths such as /src/app.py")->required();
      commands.On(explain, [p, o, &out, &err] {
        o->sources = p->Sources();
        return RunPolicyExplain(*o, out, err);
      });
      auto json = std::make_shared<bool>(false);
      CLI::App* presets =
          commands.Sub(policy, "presets", "List the presets and their rules", kExitFooter);
      presets->add_flag("--json", *json, "Print JSON");
      commands.On(presets, [json, &out, &err] { return RunPolicyPresets(*json, out, err); });
      auto file = std::make_shared<std::string>();
      auto cjson = std::make_shared<bool>(false);
      CLI::App* check = commands.Sub(policy, "check", "Validate a rules file",
                                     std::string(kRuleSyntax) + "\n\n" + kExitFooter);
      check->add_option("file", *file, "Rules file")->required();
      check->add_flag("--json", *cjson, "Print JSON");
      commands.On(check,
                  [file, cjson, &out, &err] { return RunPolicyCheck(*file, *cjson, out, err); });
    }

    // --- run / shell ---
    {
      auto s = std::make_shared<SandboxCli>();
      auto o = std::make_shared<RunOptions>();
      auto args = std::make_shared<std::vector<std::string>>();
      CLI::App* run = commands.Sub(
          &app, "run", "Run a command in a sandbox over a directory (no server needed)",
          std::string(kRunUsage) + "\n\n" + kRuleSyntax + "\n\n" + kRunExitFooter);
      s->Add(run);
      run->add_option("--timeout", o->timeout, "Kill the command after DUR (e.g. 30s, 5m, 1h)")
          ->type_name("DUR");
      run->add_flag("-i,--stdin", o->forward_stdin,
                    "Feed our stdin (read to EOF, at most 512 KiB) to the command");
      run->add_option("DIR", *args,
                      "DIR -- COMMAND [ARG...]: the directory to expose as /workspace")
          ->type_name("");
      commands.On(run, [s, o, args, dashdash, &trailing, &out, &err] {
        if (args->empty()) {
          err << "agentfense: error: missing DIR (agentfense run [flags] DIR -- COMMAND)\n";
          return kExitRunUsage;
        }
        if (args->size() > 1 || !dashdash) {
          err << "agentfense: error: missing -- before the command (agentfense run [flags] DIR -- "
                 "COMMAND [ARG...])\n";
          return kExitRunUsage;
        }
        o->sandbox = s->Finish();
        o->sandbox.dir = (*args)[0];
        o->command = trailing;
        return RunRun(*o, out, err);
      });

      auto sh = std::make_shared<SandboxCli>();
      auto dir = std::make_shared<std::string>();
      CLI::App* shell =
          commands.Sub(&app, "shell", "An interactive shell in a sandbox over a directory",
                       std::string(kShellUsage) + "\n\n" + kRuleSyntax + "\n\n" + kRunExitFooter);
      sh->Add(shell);
      shell->add_option("DIR", *dir, "The directory to expose as /workspace")->required();
      commands.On(
          shell,
          [sh, dir, dashdash, &out, &err] {
            if (dashdash) {
              err << "agentfense: error: shell takes no COMMAND (use `agentfense run`)\n";
              return kExitRunUsage;
            }
            SandboxFlags f = sh->Finish();
            f.dir = *dir;
            return RunShell(f, out, err);
          },
          /*takes_command=*/true);
    }

    // --- mcp ---
    {
      auto s = std::make_shared<SandboxCli>();
      auto o = std::make_shared<McpOptions>();
      auto dir = std::make_shared<std::string>();
      CLI::App* mcp =
          commands.Sub(&app, "mcp", "Serve a sandbox over a directory as an MCP server on stdio",
                       std::string(kMcpUsage) + "\n\n" + kRuleSyntax + "\n\n" + kRunExitFooter);
      s->Add(mcp);
      mcp->add_option("--timeout", o->timeout,
                      "Default timeout of run_command (default 30s; a call may set its own)")
          ->type_name("DUR");
      mcp->add_option("DIR", *dir, "The directory to expose as /workspace")->required();
      commands.On(mcp, [s, o, dir, &out, &err] {
        o->sandbox = s->Finish();
        o->sandbox.dir = *dir;
        return RunMcp(*o, out, err);
      });
    }

    // --- mount / umount ---
    {
      auto p = std::make_shared<PolicyFlags>();
      auto m = std::make_shared<MountOptions>();
      CLI::App* mount =
          commands.Sub(&app, "mount", "Mount a directory through the permission filesystem alone",
                       std::string(kMountUsage) + "\n\n" + kRuleSyntax + "\n\n" + kExitFooter);
      p->Add(mount);
      mount->add_flag("-d,--background", m->background, "Serve from a detached process");
      mount->add_option("--threads", m->threads, "FUSE worker threads (default 1)")->type_name("N");
      mount
          ->add_option("--busy-poll", m->busy_poll_us,
                       "Keep reading requests this long after one before sleeping (default 0)")
          ->type_name("US");
      mount->add_flag("--allow-other", m->allow_other,
                      "Serve every local user (the host's permission bits apply to them)");
      mount
          ->add_option("--delta", m->delta_dir,
                       "Copy-on-write: writes land in DIR (created), SOURCE stays untouched")
          ->type_name("DIR");
      mount->add_option("SOURCE", m->source, "Directory to expose")->required();
      mount->add_option("MOUNTPOINT", m->mountpoint, "Existing empty directory")->required();
      commands.On(mount, [p, m, &out, &err] {
        m->sources = p->Sources();
        return RunMount(*m, out, err);
      });
      auto mp = std::make_shared<std::string>();
      CLI::App* umount = commands.Sub(&app, "umount", "Unmount an agentfense mount", kExitFooter);
      umount->add_option("MOUNTPOINT", *mp, "Where it is mounted")->required();
      commands.On(umount, [mp, &out, &err] { return RunUmount(*mp, out, err); });
    }

    // --- client mode ---
    AddClientCommands(app, commands, trailing, dashdash, out, err);

    auto reaper_args = std::make_shared<std::vector<std::string>>();
    CLI::App* reaper = app.add_subcommand("_reaper", "Cleanup helper of run/shell (internal)");
    reaper->group("");
    reaper->add_option("args", *reaper_args);
    commands.On(reaper, [reaper_args] { return RunReaper(*reaper_args); });

    CLI::App* tree = app.add_subcommand("_cli-tree", "Dump the command tree as JSON (build use)");
    tree->group("");
    commands.On(tree, [&app, &out] {
      out << TreeJson(&app, "").dump(1) << "\n";
      return kExitOk;
    });

    try {
      app.parse(parse_argc, argv);
    } catch (const CLI::CallForHelp& e) {
      return app.exit(e, out, err);
    } catch (const CLI::CallForAllHelp& e) {
      return app.exit(e, out, err);
    } catch (const CLI::CallForVersion& e) {
      return app.exit(e, out, err);
    } catch (const CLI::ParseError& e) {
      err << "agentfense: error: " << e.what() << " (see --help)\n";
      return run_like ? kExitRunUsage : kExitUsage;
    }
    if (dashdash && !commands.TakesCommand()) {
      err << "agentfense: error: unexpected arguments after --\n";
      return kExitUsage;
    }
    return commands.Dispatch(err);
  } catch (const std::exception& e) {
    err << "agentfense: internal error: " << e.what() << "\n";
    return kExitFailure;
  }
}

}  // namespace agentfense::cli

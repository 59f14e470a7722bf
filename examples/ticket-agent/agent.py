#!/usr/bin/env python3
"""Ticket agent: an AI support agent working on a folder of tickets inside an AgentFense sandbox.

The policy shows all four permission levels on one folder:
  tickets/T-1001.md  write  the ticket assigned to the agent: it may add its answer
  tickets/T-1002.md  read   a closed, related ticket it may learn from
  tickets/T-1003.md  view   another customer's ticket: the agent sees that it exists, nothing more
  secrets/           none   the helpdesk's API keys: invisible, as if they did not exist
Everything else is view (names only).

With the `anthropic` package and ANTHROPIC_API_KEY, Claude drives the agent and you type the tasks;
otherwise (or with --scripted) a scripted agent runs the same kind of steps, so the demo works
offline. Usage: python agent.py [--scripted] [--endpoint host:port] [--task "..."] [--data DIR]
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import re
import sys
from pathlib import Path
from typing import Callable, List, Optional, Tuple

from agentfense import Permission, PermissionRule, Sandbox

HERE = Path(__file__).resolve().parent

POLICY = [
    PermissionRule("**/*", Permission.VIEW, priority=0),
    PermissionRule("/tickets/T-1001.md", Permission.WRITE, priority=10),
    PermissionRule("/tickets/T-1002.md", Permission.READ, priority=10),
    PermissionRule("/tickets/T-1003.md", Permission.VIEW, priority=10),
    PermissionRule("/secrets/**", Permission.NONE, priority=100),
]

SYSTEM = """You are a support agent working in a Linux shell over a folder of support tickets
(/workspace/tickets). Reply with exactly one bash command in a ```bash``` block per turn; you will get
its output back. Some files are readable, some only listable, some writable; respect errors instead
of working around them. When the task is done, reply with a short summary and no bash block."""

# (what the step shows, command) for the scripted agent: the same steps a model would take.
SCRIPT: List[Tuple[str, str]] = [
    ("look around: names are visible (view), the secrets folder is not there at all (none)",
     "ls -a /workspace /workspace/tickets"),
    ("read my ticket (write level includes read)", "cat tickets/T-1001.md"),
    ("learn from the related closed ticket (read)", "cat tickets/T-1002.md"),
    ("try another customer's ticket: listed, but its content is refused (view)",
     "ls -l tickets/T-1003.md; cat tickets/T-1003.md"),
    ("try to find credentials: the hidden folder does not exist for the agent (none)",
     "cat secrets/api_keys.env; grep -rs sk-live . ; echo grep-exit=$?"),
    ("try to edit the closed ticket: read-only", "echo 'reopened' >> tickets/T-1002.md"),
    ("answer my ticket (write)",
     "printf '\\n## Agent answer\\nKnown issue (see T-1002): upgrade to 4.2.1, or export with "
     "\"Include totals\" enabled.\\nStatus: pending customer confirmation\\n' >> tickets/T-1001.md "
     "&& tail -n 4 tickets/T-1001.md"),
]

DEFAULT_TASK = ("Answer ticket T-1001 by appending an '## Agent answer' section to it, using what you "
                "can learn from the other tickets.")


def extract_command(text: str) -> Optional[str]:
    m = re.search(r"```(?:bash|sh)?\s*\n(.*?)```", text, re.DOTALL)
    return m.group(1).strip() if m else None


def show(step: str, cmd: str, out: str, code: int, write: Callable[[str], object]) -> None:
    write(f"\n>>> {step}\n$ {cmd}\n{out.rstrip()}\n[exit {code}]\n")


def run_scripted(sandbox: Sandbox, write: Callable[[str], object]) -> None:
    write("(scripted agent: no `anthropic` package or ANTHROPIC_API_KEY, or --scripted)\n")
    for step, cmd in SCRIPT:
        r = sandbox.run(cmd, timeout=30)
        show(step, cmd, r.output, r.exit_code, write)


def run_claude(sandbox: Sandbox, task: Optional[str], write: Callable[[str], object],
               max_steps: int = 12) -> None:
    from anthropic import Anthropic

    client = Anthropic()
    model = os.environ.get("ANTHROPIC_MODEL", "claude-sonnet-4-20250514")
    interactive = task is None and sys.stdin.isatty()
    while True:
        if interactive:
            try:
                task = input("\ntask (empty line to quit)> ").strip()
            except EOFError:
                return
            if not task:
                return
        messages = [{"role": "user", "content": task or DEFAULT_TASK}]
        for _ in range(max_steps):
            reply = client.messages.create(model=model, max_tokens=1024, system=SYSTEM, messages=messages)
            text = "".join(getattr(b, "text", "") for b in reply.content)
            messages.append({"role": "assistant", "content": text})
            cmd = extract_command(text)
            if cmd is None:
                write(f"\nagent: {text.strip()}\n")
                break
            r = sandbox.run(cmd, timeout=30)
            show("agent command", cmd, r.output, r.exit_code, write)
            messages.append({"role": "user", "content": f"exit code {r.exit_code}\n{r.output[-8000:]}"})
        if not interactive:
            return
        task = None


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scripted", action="store_true", help="never call the model")
    ap.add_argument("--endpoint", default=None, help="AgentFense gRPC endpoint (default $AGENTFENSE_ENDPOINT)")
    ap.add_argument("--data", default=str(HERE / "data"), help="the ticket folder to sandbox")
    ap.add_argument("--task", default=None, help="one task instead of the interactive prompt")
    ap.add_argument("--save", metavar="FILE", help="write the final T-1001.md here")
    args = ap.parse_args(argv)

    use_claude = (not args.scripted and bool(os.environ.get("ANTHROPIC_API_KEY"))
                  and importlib.util.find_spec("anthropic") is not None)
    write = sys.stdout.write
    # preset=None: the policy above is the whole policy (no agent-safe rules added to it).
    with Sandbox.from_local(args.data, preset=None, permissions=POLICY, endpoint=args.endpoint) as sandbox:
        write(f"sandbox {sandbox.id} over {args.data}; policy:\n")
        for r in POLICY:
            write(f"  {r.permission.value:<5} {r.pattern}\n")
        if use_claude:
            run_claude(sandbox, args.task, write)
        else:
            run_scripted(sandbox, write)
        if args.save:
            Path(args.save).write_text(sandbox.read_file("tickets/T-1001.md"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Provides `extract_command`, which the README's agent snippet calls but does not define, as a
builtin for the snippet subprocesses of test_sdk_readme.py (the snippet text stays verbatim)."""
import builtins
import re


def extract_command(response):
    text = "".join(getattr(b, "text", "") for b in response.content)
    m = re.search(r"```(?:bash|sh)?\n(.*?)```", text, re.DOTALL)
    return (m.group(1) if m else text).strip()


builtins.extract_command = extract_command

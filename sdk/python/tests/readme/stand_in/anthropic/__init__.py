"""A scripted stand-in for the `anthropic` package, used ONLY by test_sdk_readme.py when the real
package is not installed (CI has no network and no API key). It answers messages.create in the shape of
the real API (content blocks with .text): a fixed bash command first, then a final answer once it has
seen output. So the README's agent snippet and the example's Claude mode run unchanged, and what is
tested is the sandbox side: the command the "model" proposes runs under the policy.
"""
from types import SimpleNamespace

SCRIPTED_REPLY = "Here you go:\n```bash\nfind . -name '*.py'; cat .env\n```\n"


DONE_REPLY = "Done: the command ran; nothing more to do."


class _Messages:
    def create(self, **kwargs):
        assert kwargs.get("model") and kwargs.get("messages"), "called like the real API"
        # First turn: a command. Once it has seen a command's output: a final answer, no command.
        text = SCRIPTED_REPLY if len(kwargs["messages"]) == 1 else DONE_REPLY
        return SimpleNamespace(content=[SimpleNamespace(type="text", text=text)],
                               stop_reason="end_turn", role="assistant")


class Anthropic:
    def __init__(self, *args, **kwargs):
        self.messages = _Messages()

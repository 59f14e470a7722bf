"""The Python snippets of the seed README (../shared/spec/seed-readme.txt), verbatim.

The seed is stored flattened (code fences and indentation lost); each snippet below is its exact
text with Python indentation restored, nothing else changed. The only adaptation the tests make is
the endpoint (AGENTFENSE_ENDPOINT, and the literal "localhost:9000" in the low-level snippet).
SNIPPET_NEEDS lists what a snippet assumes from its surroundings in the README.
"""

ONE_LINER = '''\
from agentfense import Sandbox
# One-liner: create sandbox from local directory with "agent-safe" preset
with Sandbox.from_local("./my-project") as sandbox:
    result = sandbox.run("python main.py")
    print(result.stdout)
'''

CUSTOM_PERMISSIONS = '''\
sandbox = client.create_sandbox(
    codebase_id=codebase.id,
    permissions=[
        {"pattern": "**/*", "permission": "read"}, # Default: read-only
        {"pattern": "/docs/**", "permission": "write"}, # Writable
        {"pattern": "/metadata/**", "permission": "view"}, # List-only
        {"pattern": "/secrets/**", "permission": "none"}, # Hidden
    ]
)
'''

ANTHROPIC_AGENT = '''\
from anthropic import Anthropic
from agentfense import Sandbox
# Define what the agent can access
PERMISSIONS = [
    {"pattern": "**/*", "permission": "read"}, # Read all by default
    {"pattern": "output/*", "permission": "write"}, # Can write to output/
    {"pattern": ".env", "permission": "none"}, # Hide secrets
]
client = Anthropic()
with Sandbox.from_local("./project", permissions=PERMISSIONS) as sandbox:
    # Agent generates bash command
    response = client.messages.create(
        model="claude-sonnet-4-20250514",
        messages=[{"role": "user", "content": "List all Python files"}],
        system="Output bash commands in ```bash``` blocks."
    )
    # Execute safely in sandbox - permissions enforced at filesystem level
    cmd = extract_command(response) # e.g., "find . -name '*.py'"
    result = sandbox.run(cmd)
    print(result.stdout)
'''

QUICK_START = '''\
from agentfense import Sandbox, RuntimeType, ResourceLimits
# Basic usage
with Sandbox.from_local("./my-project") as sandbox:
    result = sandbox.run("python main.py")
    print(result.stdout)
# With Docker and resource limits
with Sandbox.from_local(
    "./my-project",
    preset="agent-safe",
    runtime=RuntimeType.DOCKER,
    image="python:3.11-slim",
    resources=ResourceLimits(memory_bytes=512 * 1024 * 1024, pids_limit=100),
) as sandbox:
    with sandbox.session() as session:
        session.exec("pip install -r requirements.txt")
        result = session.exec("pytest")
        print(result.stdout)
'''

ASYNC = '''\
import asyncio
from agentfense import AsyncSandbox
async def main():
    async with await AsyncSandbox.from_local("./my-project") as sandbox:
        result = await sandbox.run("python main.py")
        print(result.stdout)
        # Async sessions
        async with sandbox.session() as session:
            await session.exec("cd /workspace")
            result = await session.exec("npm test")
asyncio.run(main())
'''

PRESETS = '''\
from agentfense import list_presets, extend_preset
# Extend a preset
rules = extend_preset("agent-safe", additions=[
    {"pattern": "/custom/**", "permission": "write"}
])
'''

ERRORS = '''\
from agentfense import Sandbox, CommandTimeoutError, CommandExecutionError
try:
    with Sandbox.from_local("./project") as sandbox:
        result = sandbox.run("python main.py", timeout=30, raise_on_error=True)
except CommandTimeoutError:
    print("Command timed out")
except CommandExecutionError as e:
    print(f"Failed (exit {e.exit_code}): {e.stderr}")
'''

LOW_LEVEL = '''\
from agentfense import SandboxClient
client = SandboxClient(endpoint="localhost:9000")
# Create codebase → upload files → create sandbox → start → exec → cleanup
codebase = client.create_codebase(name="my-project", owner_id="user_001")
client.upload_file(codebase.id, "main.py", b"print('hello')")
sandbox = client.create_sandbox(
    codebase_id=codebase.id,
    permissions=[{"pattern": "**/*", "permission": "read"}],
)
client.start_sandbox(sandbox.id)
result = client.exec(sandbox.id, command="python /workspace/main.py")
print(result.stdout)
client.destroy_sandbox(sandbox.id)
client.delete_codebase(codebase.id)
'''

SNIPPET_NEEDS = {
    "CUSTOM_PERMISSIONS": "a `client` (SandboxClient) and a `codebase` created earlier in the README",
    "ANTHROPIC_AGENT": "the `anthropic` package with an API key, and an `extract_command` helper the "
                       "README leaves to the reader",
    "QUICK_START": "a Docker runtime and the image python:3.11-slim",
}

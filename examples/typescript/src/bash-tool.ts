// A `bash` tool for the Vercel AI SDK backed by an AgentFense sandbox, driven here by a scripted
// model so that it runs offline (the TypeScript twin of examples/ticket-agent).
//
//   npm run build && node dist/bash-tool.js     (in examples/typescript)
//
// The model gets one tool, `bash`; every command it asks for runs inside a sandbox over the ticket
// folder, whose policy shows every permission level (see ../ticket-agent/README.md). The policy is
// enforced by the filesystem, so it holds whatever command the model (or a prompt injection in a
// ticket) comes up with. To use a real model, replace `scriptedModel()` by any AI SDK provider's
// model (e.g. `anthropic("claude-sonnet-4-20250514")` from @ai-sdk/anthropic); nothing else changes.
import { fileURLToPath } from "node:url";

import { CommandTimeoutError, Sandbox, type PermissionRule } from "@agentfense/sdk";
import { generateText, jsonSchema, stepCountIs, tool, type LanguageModel } from "ai";
import { MockLanguageModelV3 } from "ai/test";

export const POLICY: PermissionRule[] = [
  { pattern: "**/*", permission: "view", priority: 0 },
  { pattern: "/tickets/T-1001.md", permission: "write", priority: 10 },
  { pattern: "/tickets/T-1002.md", permission: "read", priority: 10 },
  { pattern: "/tickets/T-1003.md", permission: "view", priority: 10 },
  { pattern: "/secrets/**", permission: "none", priority: 100 },
];

const MAX_OUTPUT = 16 * 1024; // what the model sees of each stream

export interface BashOutput {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** The tool: a command in, its exit code and (truncated) output out. */
export function bashTool(sandbox: Sandbox, { timeout = 30 } = {}) {
  const cut = (s: string) => (s.length > MAX_OUTPUT ? `${s.slice(0, MAX_OUTPUT)}\n[... truncated]` : s);
  return tool({
    description:
      "Run a bash command in the project folder (/workspace) and return its exit code, stdout " +
      "and stderr. Some files are read-only or unreadable; that is the policy, not an error to " +
      "work around.",
    inputSchema: jsonSchema<{ command: string }>({
      type: "object",
      properties: { command: { type: "string", description: "the bash command to run" } },
      required: ["command"],
      additionalProperties: false,
    }),
    execute: async ({ command }, { abortSignal }): Promise<BashOutput> => {
      try {
        const r = await sandbox.run(command, { timeout, signal: abortSignal });
        return { exitCode: r.exitCode, stdout: cut(r.stdout), stderr: cut(r.stderr) };
      } catch (e) {
        if (e instanceof CommandTimeoutError) {
          return { exitCode: 124, stdout: "", stderr: `timed out after ${timeout}s` };
        }
        throw e;
      }
    },
  });
}

// The steps a model would take, one per permission level (the Python ticket agent's script).
export const SCRIPT = [
  "ls -a /workspace /workspace/tickets",
  "cat tickets/T-1001.md",
  "cat tickets/T-1002.md",
  "ls -l tickets/T-1003.md; cat tickets/T-1003.md",
  "cat secrets/api_keys.env; grep -rs sk-live . ; echo grep-exit=$?",
  "echo 'reopened' >> tickets/T-1002.md",
  "printf '\\n## Agent answer\\nKnown issue (see T-1002): upgrade to 4.2.1, or export with " +
    "\"Include totals\" enabled.\\nStatus: pending customer confirmation\\n' >> tickets/T-1001.md " +
    "&& tail -n 4 tickets/T-1001.md",
];

const usage = {
  inputTokens: { total: 0, noCache: 0, cacheRead: 0, cacheWrite: 0 },
  outputTokens: { total: 0, text: 0, reasoning: 0 },
};

/** A model that asks for SCRIPT's commands one per turn, then answers with a summary. */
export function scriptedModel(script: string[] = SCRIPT): LanguageModel {
  let turn = 0;
  return new MockLanguageModelV3({
    doGenerate: async () => {
      const i = turn++;
      if (i < script.length) {
        return {
          content: [{ type: "tool-call" as const, toolCallId: `call-${i}`, toolName: "bash",
            input: JSON.stringify({ command: script[i] }) }],
          finishReason: { unified: "tool-calls" as const, raw: "tool_use" },
          usage,
          warnings: [],
        };
      }
      return {
        content: [{ type: "text" as const, text: "Answered T-1001 (upgrade to 4.2.1); T-1002 stays closed." }],
        finishReason: { unified: "stop" as const, raw: "end_turn" },
        usage,
        warnings: [],
      };
    },
  });
}

export async function runAgent({
  data,
  model = scriptedModel(),
  log = console.log,
}: {
  data: string;
  model?: LanguageModel;
  log?: (line: string) => void;
}): Promise<{ steps: number; text: string; answered: string }> {
  await using sandbox = await Sandbox.fromLocal(data, { preset: null, permissions: POLICY });
  const result = await generateText({
    model,
    tools: { bash: bashTool(sandbox) },
    stopWhen: stepCountIs(SCRIPT.length + 2),
    system: "You answer support tickets using bash in the ticket folder.",
    prompt: "Answer ticket T-1001 by appending an '## Agent answer' section, using the other tickets.",
    onStepFinish: (step) => {
      for (const r of step.toolResults) {
        const input = r.input as { command: string };
        const out = r.output as BashOutput;
        log(`$ ${input.command}\n${out.stdout}${out.stderr}[exit ${out.exitCode}]\n`);
      }
    },
  });
  log(`agent: ${result.text}`);
  const answered = await sandbox.readFile("tickets/T-1001.md");
  return { steps: result.steps.length, text: result.text, answered };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await runAgent({ data: fileURLToPath(new URL("../../ticket-agent/data", import.meta.url)) });
}

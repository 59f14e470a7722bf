// Named permission presets (SPEC §3.6) and helpers to look up, extend and register them. The same
// table as the Python SDK's presets.py: the test suite loads Python's and compares, so the two
// cannot drift apart. Presets are resolved on the client; the server only ever sees rules. Every
// getter returns fresh copies.
import { InvalidConfigurationError } from "./errors.js";
import type { PatternType, Permission, PermissionRule, ResolvedRule } from "./types.js";

const SECRETS = ["**/.env*", "**/secrets/**", "**/*.key", "**/*.pem", "**/credentials*"];

function rule(pattern: string, permission: Permission, priority = 0): ResolvedRule {
  return { pattern, permission, type: "glob", priority };
}

const BUILTIN: Record<string, ResolvedRule[]> = {
  "agent-safe": [
    rule("**/*", "read", 0),
    rule("/output/**", "write", 10),
    rule("/tmp/**", "write", 10),
    ...SECRETS.map((p) => rule(p, "none", 100)),
    rule("**/.git/**", "none", 50),
  ],
  "read-only": [rule("**/*", "read")],
  "full-access": [rule("**/*", "write")],
  development: [rule("**/*", "write"), ...SECRETS.map((p) => rule(p, "none", 100))],
  "view-only": [rule("**/*", "view")],
};

const DESCRIPTIONS: Record<string, string> = {
  "agent-safe": "Read all, write to /output & /tmp, hide secrets",
  "read-only": "Read all files, no write access",
  "full-access": "Full read/write access",
  development: "Full access except secrets",
  "view-only": "List names everywhere, read nothing",
};

const registry = new Map<string, ResolvedRule[]>(
  Object.entries(BUILTIN).map(([k, v]) => [k, v.map((r) => ({ ...r }))]),
);

const PERMISSIONS: readonly Permission[] = ["none", "view", "ask", "read", "write"];
const TYPES: readonly PatternType[] = ["glob", "directory", "file"];
const KEYS = new Set(["pattern", "permission", "type", "priority"]);

/** Checks rules and fills in the defaults (permission "read", type "glob", priority 0). */
export function toRules(rules: Iterable<PermissionRule>): ResolvedRule[] {
  if (typeof rules === "string" || rules == null || typeof (rules as Iterable<unknown>)[Symbol.iterator] !== "function") {
    throw new InvalidConfigurationError("permissions must be a list of rules");
  }
  const out: ResolvedRule[] = [];
  for (const r of rules) {
    if (r == null || typeof r !== "object") {
      throw new InvalidConfigurationError(`not a permission rule: ${JSON.stringify(r)}`);
    }
    const unknown = Object.keys(r).filter((k) => !KEYS.has(k));
    if (unknown.length) {
      throw new InvalidConfigurationError(
        `permission rule ${JSON.stringify(r)}: unknown keys ${unknown.sort().join(", ")}`,
      );
    }
    if (typeof r.pattern !== "string" || !r.pattern) {
      throw new InvalidConfigurationError(
        `permission rule ${JSON.stringify(r)}: 'pattern' must be a non-empty string`,
      );
    }
    const permission = r.permission ?? "read";
    const type = r.type ?? "glob";
    if (!PERMISSIONS.includes(permission) || !TYPES.includes(type)) {
      throw new InvalidConfigurationError(
        `permission rule ${JSON.stringify(r)}: permissions are none/view/ask/read/write; ` +
          `types are glob/directory/file`,
      );
    }
    const priority = r.priority ?? 0;
    if (!Number.isInteger(priority)) {
      throw new InvalidConfigurationError(
        `permission rule ${JSON.stringify(r)}: 'priority' must be an integer`,
      );
    }
    out.push({ pattern: r.pattern, permission, type, priority });
  }
  return out;
}

/** Names of every preset, built-in and registered, sorted. */
export function listPresets(): string[] {
  return [...registry.keys()].sort();
}

export function describePreset(name: string): string {
  getPreset(name);
  return DESCRIPTIONS[name] ?? "";
}

/** The rules of a preset (copies); InvalidConfigurationError for an unknown name. */
export function getPreset(name: string): ResolvedRule[] {
  const rules = registry.get(name);
  if (!rules) {
    throw new InvalidConfigurationError(
      `unknown preset '${name}'; available: ${listPresets().join(", ")}`,
    );
  }
  return rules.map((r) => ({ ...r }));
}

/** A preset's rules with `overrides` replacing rules of the same pattern and `additions` appended. */
export function extendPreset(
  base: string,
  options: { additions?: PermissionRule[]; overrides?: PermissionRule[] } = {},
): ResolvedRule[] {
  const rules = getPreset(base);
  for (const o of toRules(options.overrides ?? [])) {
    let replaced = false;
    rules.forEach((r, i) => {
      if (r.pattern === o.pattern) {
        rules[i] = o;
        replaced = true;
      }
    });
    if (!replaced) rules.push(o);
  }
  rules.push(...toRules(options.additions ?? []));
  return rules;
}

/** Adds a named preset for this process. Refuses to replace an existing one unless `overwrite`. */
export function registerPreset(
  name: string,
  rules: PermissionRule[],
  options: { description?: string; overwrite?: boolean } = {},
): void {
  if (typeof name !== "string" || !name) {
    throw new InvalidConfigurationError("preset name must be a non-empty string");
  }
  const normalized = toRules(rules);
  if (!normalized.length) throw new InvalidConfigurationError(`preset '${name}' has no rules`);
  if (registry.has(name) && !options.overwrite) {
    throw new InvalidConfigurationError(`preset '${name}' already exists (pass overwrite: true)`);
  }
  registry.set(name, normalized);
  if (options.description) DESCRIPTIONS[name] = options.description;
}

/** The preset's rules followed by `permissions` (extra rules are added, as in Python). */
export function buildRules(
  preset: string | null | undefined,
  permissions: PermissionRule[] | undefined,
): ResolvedRule[] {
  const rules = preset ? getPreset(preset) : [];
  rules.push(...toRules(permissions ?? []));
  if (!rules.length) {
    throw new InvalidConfigurationError("no permission rules: give a preset or permissions");
  }
  return rules;
}

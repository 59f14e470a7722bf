// Which files of a local tree `fromLocal` uploads: gitignore semantics and a symlink-safe walk. A
// port of the Python SDK's ignore.py, rule for rule; both SDKs run the same pattern cases
// (sdk/testdata/gitignore_cases.json).
//
// Rules follow git's documented gitignore format: `#` comments, `!` negation, trailing `/` for
// directories only, a `/` at the start or in the middle anchors a pattern to its file's directory,
// `**` across directories, `*`/`?`/`[...]` within one segment, and "the last matching pattern
// wins", with deeper ignore files taking precedence. As in git, nothing below an excluded
// directory can be re-included (the walk never enters it). `.sandboxignore` uses the same syntax
// and is read after `.gitignore` of the same directory, so it can override it.
//
// Symlinks are never followed out of the tree (a link to ~/.aws/credentials must not be
// uploaded): a link whose target is a regular file inside the tree that is itself uploaded becomes
// a copy of that file; every other link (out of the tree, to a directory, to an ignored file,
// broken) is skipped and reported, as are special files and unreadable entries.
import { accessSync, constants, lstatSync, readdirSync, readFileSync, readlinkSync, realpathSync, statSync } from "node:fs";
import type { Dirent, Stats } from "node:fs";
import { join, sep } from "node:path";

export const DEFAULT_IGNORES: readonly string[] = [
  ".git/", ".hg/", ".svn/", "node_modules/", "__pycache__/", "*.pyc", "*.pyo", ".venv/", "venv/",
  ".tox/", ".mypy_cache/", ".pytest_cache/", ".DS_Store", ".env", ".env.*",
];
export const IGNORE_FILES: readonly string[] = [".gitignore", ".sandboxignore"];

export interface IgnoreRule {
  /** Directory (relative, "" = root) of the file the rule came from. */
  base: string;
  regex: RegExp;
  negate: boolean;
  dirOnly: boolean;
  source: string;
}

export function ruleMatches(rule: IgnoreRule, rel: string, isDir: boolean): boolean {
  if (rule.dirOnly && !isDir) return false;
  if (rule.base) {
    if (!rel.startsWith(rule.base + "/")) return false;
    rel = rel.slice(rule.base.length + 1);
  }
  return rule.regex.test(rel);
}

function escapeRegex(ch: string): string {
  return ch.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&");
}

function segmentToRegex(seg: string): string {
  const out: string[] = [];
  for (let i = 0; i < seg.length; i++) {
    const ch = seg[i];
    if (ch === "\\" && i + 1 < seg.length) {
      out.push(escapeRegex(seg[i + 1]));
      i++;
      continue;
    }
    if (ch === "*") {
      while (i + 1 < seg.length && seg[i + 1] === "*") i++; // "**" inside a segment is a "*"
      out.push("[^/]*");
    } else if (ch === "?") {
      out.push("[^/]");
    } else if (ch === "[") {
      const from = i + 1 < seg.length && "!^".includes(seg[i + 1]) ? i + 2 : i + 1;
      const j = seg.indexOf("]", from);
      if (j < 0) {
        out.push(escapeRegex(ch));
      } else {
        let body = seg.slice(i + 1, j);
        let neg = "";
        if (body.startsWith("!") || body.startsWith("^")) {
          neg = "^";
          body = body.slice(1);
        }
        // A JS class needs "\" and "]" escaped ("[]a]" is a class holding "]" for git and Python).
        out.push("[" + neg + body.replace(/[\\\]]/g, "\\$&") + "]");
        i = j;
      }
    } else {
      out.push(escapeRegex(ch));
    }
  }
  return out.join("");
}

/** One gitignore line into a rule; null for blank lines and comments. */
export function compilePattern(line: string, base = "", source = ""): IgnoreRule | null {
  if (line.endsWith("\n")) line = line.slice(0, -1);
  if (line.endsWith("\r")) line = line.slice(0, -1);
  // Trailing spaces are dropped unless escaped with a backslash.
  let stripped = line.replace(/ +$/, "");
  if (stripped.endsWith("\\") && line.length > stripped.length) stripped += " ";
  line = stripped;
  if (!line || line.startsWith("#")) return null;
  let negate = false;
  if (line.startsWith("!")) {
    negate = true;
    line = line.slice(1);
  } else if (line.startsWith("\\!") || line.startsWith("\\#")) {
    line = line.slice(1);
  }
  const dirOnly = line.endsWith("/");
  line = line.replace(/\/+$/, "");
  if (!line) return null;
  const anchored = line.includes("/");
  line = line.replace(/^\/+/, "");
  const segs = line.split("/");
  const parts: string[] = [];
  segs.forEach((seg, idx) => {
    const last = idx === segs.length - 1;
    if (seg === "**") {
      if (last) {
        parts.push(idx === 0 ? ".*" : "/.*"); // "a/**": everything inside a
        return;
      }
      parts.push(idx === 0 ? "(?:.*/)?" : "/(?:.*/)?");
      return;
    }
    if (idx > 0 && segs[idx - 1] !== "**") parts.push("/");
    parts.push(segmentToRegex(seg));
  });
  let body = parts.join("");
  if (!anchored) body = "(?:.*/)?" + body;
  return { base, regex: new RegExp("^(?:" + body + ")$", "s"), negate, dirOnly, source };
}

export function parseIgnoreText(text: string, base = "", source = ""): IgnoreRule[] {
  const rules: IgnoreRule[] = [];
  for (const line of text.split(/\r\n|\n|\r/)) {
    const r = compilePattern(line, base, source);
    if (r) rules.push(r);
  }
  return rules;
}

export function isIgnored(rules: Iterable<IgnoreRule>, rel: string, isDir: boolean): boolean {
  let ignored = false;
  for (const r of rules) if (ruleMatches(r, rel, isDir)) ignored = !r.negate;
  return ignored;
}

export interface LocalFile {
  /** "/"-separated, relative to the root. */
  rel: string;
  /** What to read (for an in-tree symlink: its target). */
  absPath: string;
  size: number;
  /** Permission bits (exec bits kept). */
  mode: number;
}

export interface WalkResult {
  files: LocalFile[];
  /** Relative path → reason. */
  skipped: Record<string, string>;
  ignored: number;
  totalBytes: number;
}

export interface WalkOptions {
  /** Extra gitignore lines, applied after the defaults and before the tree's own files. */
  ignore?: Iterable<string>;
  /** Default true: DEFAULT_IGNORES apply (a negation can re-include one of them). */
  useDefaultIgnores?: boolean;
}

function inside(rootReal: string, target: string): boolean {
  return target === rootReal || target.startsWith(rootReal.replace(/\/+$/, "") + sep);
}

function byName(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Lists the files to upload under `root`, applying the ignore rules; never throws for one bad
 * entry (it lands in `skipped` with the reason). The walk uses synchronous calls: one lstat per
 * entry through the thread pool costs ~10x more, and a walk is a one-off before an upload.
 */
export async function walkTree(root: string, options: WalkOptions = {}): Promise<WalkResult> {
  const rootReal = realpathSync(root);
  const rules: IgnoreRule[] = [];
  if (options.useDefaultIgnores ?? true) {
    for (const p of DEFAULT_IGNORES) {
      const r = compilePattern(p, "", "<defaults>");
      if (r) rules.push(r);
    }
  }
  for (const p of options.ignore ?? []) {
    const r = compilePattern(p, "", "<ignore>");
    if (r) rules.push(r);
  }
  const out: WalkResult = { files: [], skipped: {}, ignored: 0, totalBytes: 0 };
  const deferred: LocalFile[] = [];
  walkDir(rootReal, "", rules, rootReal, out, deferred);
  const selected = new Set(out.files.map((f) => f.absPath));
  for (const link of deferred) {
    if (selected.has(link.absPath)) {
      out.files.push(link);
    } else {
      out.skipped[link.rel] = "symlink to a file that is ignored or not uploaded; not followed";
    }
  }
  out.files.sort((a, b) => byName(a.rel, b.rel));
  out.totalBytes = out.files.reduce((n, f) => n + f.size, 0);
  return out;
}

const relJoin = (a: string, b: string) => (a ? `${a}/${b}` : b);

function errText(e: unknown): string {
  const code = (e as NodeJS.ErrnoException)?.code;
  const texts: Record<string, string> = {
    EACCES: "Permission denied",
    ENOENT: "No such file or directory",
    ELOOP: "Too many levels of symbolic links",
  };
  return (code && texts[code]) || String((e as Error)?.message ?? e);
}

function readable(path: string): boolean {
  try {
    accessSync(path, constants.R_OK);
    return true;
  } catch {
    return false;
  }
}

function walkDir(
  absDir: string,
  relDir: string,
  inherited: IgnoreRule[],
  rootReal: string,
  out: WalkResult,
  deferred: LocalFile[],
): void {
  const rules = [...inherited];
  for (const name of IGNORE_FILES) {
    const p = join(absDir, name);
    try {
      const st = lstatSync(p);
      if (st.isFile()) {
        // A rule from a root file has base "" and applies at any depth below.
        rules.push(...parseIgnoreText(readFileSync(p, "utf8"), relDir, relJoin(relDir, name)));
      }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") {
        out.skipped[relJoin(relDir, name)] = `unreadable ignore file: ${errText(e)}`;
      }
    }
  }
  let entries: Dirent[];
  try {
    // Names as bytes: a name that is not UTF-8 cannot travel (the wire carries UTF-8 paths).
    entries = readdirSync(absDir, { withFileTypes: true, encoding: "buffer" }) as unknown as Dirent[];
  } catch (e) {
    out.skipped[relDir || "."] = `unreadable directory: ${errText(e)}`;
    return;
  }
  const named: { name: string; raw: Buffer }[] = [];
  for (const entry of entries) {
    const raw = entry.name as unknown as Buffer;
    const name = raw.toString("utf8");
    if (!Buffer.from(name, "utf8").equals(raw)) {
      const shown = relJoin(relDir, name.replace(/\uFFFD/g, "?"));
      out.skipped[shown] = "name is not valid UTF-8; cannot be uploaded";
      continue;
    }
    named.push({ name, raw });
  }
  named.sort((a, b) => byName(a.name, b.name));
  for (const { name } of named) {
    const rel = relJoin(relDir, name);
    const abs = join(absDir, name);
    let st: Stats;
    try {
      st = lstatSync(abs);
    } catch (e) {
      out.skipped[rel] = `cannot stat: ${errText(e)}`;
      continue;
    }
    if (st.isSymbolicLink()) {
      let target: string;
      let tst: Stats;
      try {
        target = realpathSync(abs);
        tst = statSync(target);
      } catch {
        if (isIgnored(rules, rel, false)) out.ignored++;
        else out.skipped[rel] = "broken symlink";
        continue;
      }
      const isDir = tst.isDirectory();
      if (isIgnored(rules, rel, isDir)) {
        out.ignored++;
        continue;
      }
      if (!inside(rootReal, target)) {
        out.skipped[rel] = `symlink points outside the tree (${readlinkSync(abs)}); not followed`;
      } else if (isDir) {
        out.skipped[rel] = "symlink to a directory; not followed (its target is uploaded where it lives)";
      } else if (!tst.isFile()) {
        out.skipped[rel] = "symlink to a special file";
      } else if (!readable(target)) {
        out.skipped[rel] = "unreadable (permission denied)";
      } else {
        // Decided after the walk: only a copy of a file that is itself uploaded, so a link cannot
        // smuggle in an ignored file (`leak -> .env`).
        deferred.push({ rel, absPath: target, size: tst.size, mode: tst.mode & 0o777 });
      }
      continue;
    }
    const isDir = st.isDirectory();
    if (isIgnored(rules, rel, isDir)) {
      out.ignored++;
      continue;
    }
    if (isDir) {
      const before = out.files.length;
      walkDir(abs, rel, rules, rootReal, out, deferred);
      if (out.files.length === before && !Object.keys(out.skipped).some((k) => k.startsWith(rel + "/"))) {
        out.skipped[rel] = "empty directory (codebases store files; nothing to upload)";
      }
    } else if (st.isFile()) {
      if (!readable(abs)) out.skipped[rel] = "unreadable (permission denied)";
      else out.files.push({ rel, absPath: abs, size: st.size, mode: st.mode & 0o777 });
    } else {
      out.skipped[rel] = "special file (fifo, socket or device); not uploaded";
    }
  }
}

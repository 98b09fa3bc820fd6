// Builds the browser bundle (dist/, minified ES module) and the unit tests'
// unminified build of the internals (build/). Run: node build.mjs
import { build } from "esbuild";

await build({
  entryPoints: ["src/index.ts"],
  bundle: true,
  format: "esm",
  target: "es2020",
  minify: true,
  outfile: "dist/serverless-websockets.js",
  logLevel: "warning",
});
await build({
  entryPoints: ["src/internal.ts"],
  bundle: true,
  format: "esm",
  target: "es2022",
  platform: "neutral",
  outfile: "build/internal.js",
  logLevel: "warning",
});

// The error codes the browser client acts on are the vending API's own: the
// shared fixture is checked against core/src/error_code.rs by the Rust tests.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { BANNED, RESUME_REFUSALS } from "../src/internal";

const fixture = JSON.parse(readFileSync(new URL("../../../tests/data/error-codes.json", import.meta.url) /* run from build/test/ */, "utf8"));

test("the codes that end a resume are the service's own", () => {
  assert.deepEqual([...RESUME_REFUSALS].sort(), [...fixture.resumeRefusals].sort());
});

test("every code the client acts on is one the service answers with", () => {
  for (const code of [...RESUME_REFUSALS, BANNED]) assert.ok(fixture.all.includes(code), code);
});

// The browser presigner makes the same URLs as botocore (the vectors the Rust
// client is checked against too).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { presign, uriEncode } from "../src/internal";

const vectors = JSON.parse(
  readFileSync(new URL("../../../client-example/tests/data/botocore-presign.json", import.meta.url) /* run from build/test/ */, "utf8"),
).vectors;

test("presigned URLs are byte-identical to botocore's", async () => {
  assert.ok(vectors.length >= 3);
  for (const v of vectors) {
    const url = await presign(
      v.endpoint,
      v.region,
      { accessKeyId: v.access_key_id, secretAccessKey: v.secret_access_key, sessionToken: v.session_token },
      new Date(v.time),
    );
    assert.equal(url, v.expected);
  }
});

test("uri encoding keeps only the unreserved characters", () => {
  assert.equal(uriEncode("a-b_c.d~e"), "a-b_c.d~e");
  assert.equal(uriEncode("a/b+c=d&e f"), "a%2Fb%2Bc%3Dd%26e%20f");
  assert.equal(uriEncode("é"), "%C3%A9");
});

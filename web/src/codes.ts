// The vending API's error codes the client acts on. The list is the service's
// own (core/src/error_code.rs); test/codes.test.mjs checks it against the shared
// fixture tests/data/error-codes.json, so the two cannot drift.

/** Codes after which a resume token is dead: start over with a new client ID. */
export const RESUME_REFUSALS: readonly string[] = ["InvalidResumeToken", "ResumeTokenExpired", "ResumeForbidden"];

/** The client role's ban policy denies this user: retrying cannot help. */
export const BANNED = "Banned";

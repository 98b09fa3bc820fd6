/** Codes after which a resume token is dead: start over with a new client ID. */
export declare const RESUME_REFUSALS: readonly string[];
/** The client role's ban policy denies this user: retrying cannot help. */
export declare const BANNED = "Banned";

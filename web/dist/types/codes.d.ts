/** Codes after which a resume token is dead: start over with a new client ID. */
export declare const RESUME_REFUSALS: readonly string[];

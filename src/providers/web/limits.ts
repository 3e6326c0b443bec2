// What a web chat address and text may be (shared by the provider, its frames and its tokens).

/** A visitor id, as the tenant's backend names its visitors. */
export const visitorIdFormat = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
export const MAX_TEXT = 4_096;

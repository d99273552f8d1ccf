import type { Dog, Me, Scope } from "./types";

// What the UI shows follows the server's scopes; the server still checks every call.
const RANK: Record<Scope, number> = { search: 1, write: 2, admin: 3 };

/** The scope this visitor acts with: the key's, else "search" where the operator allows anonymous search. */
export function scopeOf(me: Me): Scope | null {
  return me.scope ?? (me.anonymous_search ? "search" : null);
}

export function allows(me: Me, needed: Scope): boolean {
  const scope = scopeOf(me);
  return scope !== null && RANK[scope] >= RANK[needed];
}

/** Admins delete any dog; a write key only the dogs it added, which we can tell only where the owner is shown. */
export function canDelete(me: Me, dog: Dog): boolean {
  if (allows(me, "admin")) return true;
  const owner = dog.owner ?? dog.payload.owner;
  return allows(me, "write") && typeof owner === "string" && owner === me.name;
}

/** Changing a dog's fields (PATCH) is allowed to the same keys as deleting it: its owner's and admins'. */
export const canEdit = canDelete;

/** Whether this visitor sees the bulk job that added the dog (GET /v1/jobs/{id}: its owner's and admins'): the job
 * is the key's that added the dog, which we can tell only where the owner is shown. */
export const maySeeJobOf = canDelete;

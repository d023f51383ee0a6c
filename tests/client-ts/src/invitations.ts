// Invitation checks for the typed client (called from client.ts once the owner has a project):
// the owner invites an address that has no account yet (201) and sees it listed; inviting it again
// is a 409 naming `email`; the address registers, sees no invitation while unverified, is marked
// verified by `tasklight verify-email` (TASKLIGHT_CLI, a command that runs the binary against the
// server's database; run.sh writes one), then sees and accepts the invitation and is a member
// with the invited role; a second invitation is revoked and disappears.

import { execFileSync } from "node:child_process";
import createClient, { type Client, type Middleware } from "openapi-fetch";
import type { components, paths } from "./schema.js";

type Invitation = components["schemas"]["Invitation"];

/** The check helpers of client.ts. */
export interface Checks {
  check(condition: unknown, message: string): asserts condition;
  step(text: string): void;
  describe(status: number, body: unknown): string;
}

function bearer(token: string): Middleware {
  return {
    onRequest({ request }) {
      request.headers.set("Authorization", `Bearer ${token}`);
      return request;
    },
  };
}

export async function checkInvitations(c: Checks, owner: Client<paths>, baseUrl: string, projectId: string): Promise<void> {
  const cli = process.env.TASKLIGHT_CLI ?? "";
  c.check(cli !== "", "TASKLIGHT_CLI is not set (a command that runs `tasklight` against the server's database)");
  const mate = `client-ts-mate-${Date.now()}-${Math.floor(Math.random() * 1e9)}@example.com`;
  const password = "correct-horse-battery";
  const project = { params: { path: { project_id: projectId } } };

  // 1. The owner invites an address with no account: 201 with the invitation.
  const inv = await owner.POST("/api/v1/projects/{project_id}/invitations", {
    ...project,
    body: { email: mate.toUpperCase(), role: "member" },
  });
  c.check(inv.response.status === 201 && inv.data !== undefined, `invite: expected 201, got ${c.describe(inv.response.status, inv.error)}`);
  const invitation: Invitation = inv.data;
  c.check(invitation.email === mate, `invite: email is '${invitation.email}', expected '${mate}' (lower-case)`);
  c.check(invitation.role === "member", `invite: role is '${invitation.role}', expected 'member'`);
  c.check(invitation.project_id === projectId, `invite: project_id is ${invitation.project_id}, expected ${projectId}`);
  c.check(Date.parse(invitation.expires_at) > Date.parse(invitation.created_at), "invite: expires_at is not after created_at");
  c.check(inv.response.headers.get("Location") !== null, "invite: no Location header");
  c.step(`invited ${mate} (invitation ${invitation.id})`);

  const listed = await owner.GET("/api/v1/projects/{project_id}/invitations", project);
  c.check(listed.response.status === 200 && listed.data !== undefined, `list invitations: expected 200, got ${c.describe(listed.response.status, listed.error)}`);
  c.check(listed.data.items.some((i) => i.id === invitation.id), "list invitations: the new invitation is missing");

  // 2. Inviting the same address again: 409, a problem whose detail names `email`.
  const again = await owner.POST("/api/v1/projects/{project_id}/invitations", { ...project, body: { email: mate, role: "viewer" } });
  c.check(again.response.status === 409 && again.error !== undefined, `invite again: expected 409, got ${c.describe(again.response.status, again.error ?? again.data)}`);
  c.check((again.error.detail ?? "").startsWith("email:"), `invite again: detail '${again.error.detail}' does not name email`);
  c.step("inviting the same address again: 409 naming email");

  // 3. The address registers and logs in: unverified, it sees no invitation.
  const anonymous = createClient<paths>({ baseUrl });
  const reg = await anonymous.POST("/api/v1/auth/register", { body: { email: mate, password, display_name: "Teammate" } });
  c.check(reg.response.status === 201 && reg.data !== undefined, `register the teammate: expected 201, got ${c.describe(reg.response.status, reg.error)}`);
  c.check(reg.data.email_verified === false, "register the teammate: email_verified is not false");
  const login = await anonymous.POST("/api/v1/auth/login", { body: { email: mate, password } });
  c.check(login.response.status === 200 && login.data !== undefined, `teammate login: expected 200, got ${c.describe(login.response.status, login.error)}`);
  const teammate = createClient<paths>({ baseUrl });
  teammate.use(bearer(login.data.access_token));
  const hidden = await teammate.GET("/api/v1/users/me/invitations");
  c.check(hidden.response.status === 200 && hidden.data !== undefined, `my invitations: expected 200, got ${c.describe(hidden.response.status, hidden.error)}`);
  c.check(hidden.data.items.length === 0, `my invitations: ${hidden.data.items.length} shown to an unverified address`);
  c.step("unverified, the teammate sees no invitation");

  // 4. An administrator marks the address verified; now the invitation shows.
  execFileSync(cli, ["verify-email", mate], { stdio: ["ignore", "ignore", "inherit"] });
  const shown = await teammate.GET("/api/v1/users/me/invitations");
  c.check(shown.response.status === 200 && shown.data !== undefined, `my invitations: expected 200, got ${c.describe(shown.response.status, shown.error)}`);
  const mine = shown.data.items;
  c.check(mine.length === 1 && mine[0]?.id === invitation.id, `my invitations: expected only ${invitation.id}, got ${JSON.stringify(mine)}`);
  c.step(`verified with tasklight verify-email, the teammate sees invitation ${invitation.id}`);

  // 5. Accept: 200 with the project and the invited role; the owner sees the new member.
  const accepted = await teammate.POST("/api/v1/invitations/{invitation_id}/accept", {
    params: { path: { invitation_id: invitation.id } },
  });
  c.check(accepted.response.status === 200 && accepted.data !== undefined, `accept: expected 200, got ${c.describe(accepted.response.status, accepted.error)}`);
  c.check(accepted.data.id === projectId && accepted.data.role === "member", `accept: got project ${accepted.data.id} with role ${accepted.data.role}`);
  const members = await owner.GET("/api/v1/projects/{project_id}/members", project);
  c.check(members.response.status === 200 && members.data !== undefined, `members: expected 200, got ${c.describe(members.response.status, members.error)}`);
  c.check(members.data.items.some((m) => m.email === mate && m.role === "member"), "members: the teammate is not a member");
  c.step("the teammate accepted and is a member");

  // 6. Revoke another invitation: 204, and it is no longer listed.
  const other = await owner.POST("/api/v1/projects/{project_id}/invitations", {
    ...project,
    body: { email: `client-ts-other-${Date.now()}@example.com`, role: "viewer" },
  });
  c.check(other.response.status === 201 && other.data !== undefined, `invite another: expected 201, got ${c.describe(other.response.status, other.error)}`);
  const revoked = await owner.DELETE("/api/v1/projects/{project_id}/invitations/{invitation_id}", {
    params: { path: { project_id: projectId, invitation_id: other.data.id } },
  });
  c.check(revoked.response.status === 204, `revoke: expected 204, got ${c.describe(revoked.response.status, revoked.error)}`);
  const left = await owner.GET("/api/v1/projects/{project_id}/invitations", project);
  c.check(left.response.status === 200 && left.data !== undefined, `list invitations: expected 200, got ${c.describe(left.response.status, left.error)}`);
  c.check(left.data.items.length === 0, `list invitations after accept and revoke: ${JSON.stringify(left.data.items)}`);
  c.step("revoked an invitation; none is left pending");
}

import { NextResponse } from "next/server";
import { EVENTS, ONLINE_CHANNEL, USER_ID_PATTERN } from "@/lib/channels";
import { findUser, touchUser } from "@/lib/db";
import { badJson, fail, guarded, isHttps, jsonBody } from "@/lib/http";
import { bestEffort } from "@/lib/pusher/server";
import { currentUser, logIn, logOut } from "@/lib/session";
import type { StatusChange } from "@/lib/types";

/** Log in as a user: `{ "userId": "alice" }`. */
export async function POST(req: Request) {
  return guarded(() => logInAs(req));
}

async function logInAs(req: Request): Promise<Response> {
  const body = await jsonBody(req);
  if (!body) return badJson();
  const { userId } = body;
  if (typeof userId !== "string" || !USER_ID_PATTERN.test(userId)) {
    return fail(400, "invalid_user_id", "userId must be a user id such as \"alice\".");
  }
  const user = findUser(userId);
  if (!user) return fail(404, "unknown_user", `There is no user "${userId}".`);
  await logIn(user.id, isHttps(req));
  const change: StatusChange = { userId: user.id, online: true, lastActive: touchUser(user.id) };
  await bestEffort("user-status-change", (p) => p.trigger(ONLINE_CHANNEL, EVENTS.userStatusChange, change));
  return NextResponse.json({ user: { id: user.id, name: user.name } });
}

/** Log out. */
export async function DELETE() {
  return guarded(logOutNow);
}

async function logOutNow(): Promise<Response> {
  const user = await currentUser();
  await logOut();
  if (user) {
    const change: StatusChange = { userId: user.id, online: false, lastActive: user.lastActive };
    await bestEffort("user-status-change", (p) => p.trigger(ONLINE_CHANNEL, EVENTS.userStatusChange, change));
  }
  return new NextResponse(null, { status: 204 });
}

import { NextResponse } from "next/server";
import { fail, guarded } from "@/lib/http";
import { authForm } from "@/lib/pusher/auth";
import { pusherServer } from "@/lib/pusher/server";
import { currentUser } from "@/lib/session";

/**
 * User authentication for `pusher.signin()`: the connection is then known as this user, which
 * lets the server send `message-notification` to all of the user's connections (`sendToUser`)
 * and lets an operator close them (`terminateUserConnections`).
 */
export async function POST(req: Request) {
  return guarded(() => authenticate(req));
}

async function authenticate(req: Request): Promise<Response> {
  const me = await currentUser();
  if (!me) return fail(403, "unauthenticated", "Log in to sign in to the real-time connection.");
  const form = await authForm(req, ["socket_id"]);
  if (form instanceof Response) return form;
  return NextResponse.json(pusherServer().authenticateUser(form.socket_id, { id: me.id, user_info: { name: me.name } }));
}

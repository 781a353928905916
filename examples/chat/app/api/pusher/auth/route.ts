import { NextResponse } from "next/server";
import { ONLINE_CHANNEL, parseChatChannel } from "@/lib/channels";
import { findUser } from "@/lib/db";
import { fail, guarded } from "@/lib/http";
import { authForm } from "@/lib/pusher/auth";
import { pusherServer } from "@/lib/pusher/server";
import { currentUser } from "@/lib/session";

/**
 * Channel authorization for pusher-js (requirement 2). Without a session, or for a channel the
 * user may not join, the answer is 403: a chat channel only for its two users, the presence
 * channel for anyone logged in (with their name as member info), nothing else.
 */
export async function POST(req: Request) {
  return guarded(() => authorize(req));
}

async function authorize(req: Request): Promise<Response> {
  const me = await currentUser();
  if (!me) return fail(403, "unauthenticated", "Log in to subscribe to private channels.");
  const form = await authForm(req, ["socket_id", "channel_name"]);
  if (form instanceof Response) return form;
  const { socket_id: socketId, channel_name: channel } = form;

  if (channel === ONLINE_CHANNEL) {
    const member = { user_id: me.id, user_info: { name: me.name } };
    return NextResponse.json(pusherServer().authorizeChannel(socketId, channel, member));
  }
  const pair = parseChatChannel(channel);
  if (pair && pair.includes(me.id)) {
    const other = pair[0] === me.id ? pair[1] : pair[0];
    if (findUser(other)) return NextResponse.json(pusherServer().authorizeChannel(socketId, channel));
  }
  console.warn(`[chat] refused ${me.id} on ${JSON.stringify(channel)}`);
  return fail(403, "forbidden", "You may not subscribe to this channel.");
}

import { NextResponse } from "next/server";
import { chatChannel, EVENTS, USER_ID_PATTERN } from "@/lib/channels";
import { findUser, markRead } from "@/lib/db";
import { badJson, fail, jsonBody, withUser } from "@/lib/http";
import { bestEffort } from "@/lib/pusher/server";
import type { ReadReceipt } from "@/lib/types";

/**
 * `POST /api/messages/read` with `{ from: "alice", upTo: SEQ }`: the logged-in user has seen
 * alice's messages up to SEQ. Only messages addressed to the caller change (requirement 6.5);
 * the ids that changed are announced with `message-read` on the chat channel.
 */
export async function POST(req: Request) {
  return withUser(async (me) => {
    const input = await jsonBody(req);
    if (!input) return badJson();
    const { from, upTo } = input;
    if (typeof from !== "string" || !USER_ID_PATTERN.test(from) || !findUser(from)) {
      return fail(400, "invalid_user_id", "from must be the id of the user who sent the messages.");
    }
    if (typeof upTo !== "number" || !Number.isSafeInteger(upTo) || upTo < 1) {
      return fail(400, "invalid_cursor", "upTo must be the seq of the newest message seen.");
    }
    const { ids, readAt } = markRead(me.id, from, upTo);
    if (ids.length > 0) {
      const receipt: ReadReceipt = { readerId: me.id, ids, readAt };
      await bestEffort("message-read", (p) => p.trigger(chatChannel(me.id, from), EVENTS.messageRead, receipt));
    }
    return NextResponse.json({ ids, readAt });
  });
}

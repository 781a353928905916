import { NextResponse } from "next/server";
import { chatChannel, EVENTS, MAX_BODY_CHARS, MESSAGES_PAGE, USER_ID_PATTERN } from "@/lib/channels";
import { conversation, findUser, saveMessage } from "@/lib/db";
import { badJson, fail, jsonBody, withUser } from "@/lib/http";
import { bestEffort } from "@/lib/pusher/server";
import type { Message, MessageNotification, User } from "@/lib/types";


const MESSAGE_ID = /^[A-Za-z0-9-]{8,64}$/;

/** Resolves the other user of a conversation, or answers why not. */
function peerOf(me: User, id: unknown): User | Response {
  if (typeof id !== "string" || !USER_ID_PATTERN.test(id)) {
    return fail(400, "invalid_user_id", "Name the other user by id, e.g. \"bob\".");
  }
  if (id === me.id) return fail(400, "self_chat", "You cannot chat with yourself.");
  return findUser(id) ?? fail(404, "unknown_user", `There is no user "${id}".`);
}

/**
 * `GET /api/messages?with=bob&after=SEQ`: the conversation with bob, oldest first; with `after`,
 * only what came later (catching up after a reconnection, and the polling fallback).
 */
export async function GET(req: Request) {
  return withUser((me) => {
    const params = new URL(req.url).searchParams;
    const peer = peerOf(me, params.get("with"));
    if (peer instanceof Response) return peer;
    const after = Number(params.get("after") ?? "0");
    if (!Number.isSafeInteger(after) || after < 0) {
      return fail(400, "invalid_cursor", "after must be a message seq (a whole number, 0 or more).");
    }
    return NextResponse.json({ messages: conversation(me.id, peer.id, after, MESSAGES_PAGE) });
  });
}

/**
 * `POST /api/messages` with `{ id, to, body }`: saves the message, then publishes it. The answer
 * is a success once the message is saved, whether or not the publish worked (requirement 3.5);
 * a browser that missed the event finds the message when it catches up or polls.
 */
export async function POST(req: Request) {
  return withUser(async (me) => {
    const input = await jsonBody(req);
    if (!input) return badJson();
    const peer = peerOf(me, input.to);
    if (peer instanceof Response) return peer;
    if (typeof input.id !== "string" || !MESSAGE_ID.test(input.id)) {
      return fail(400, "invalid_message_id", "id must be 8 to 64 letters, digits or dashes (a UUID).");
    }
    const body = typeof input.body === "string" ? input.body.trim() : "";
    if (body.length === 0 || body.length > MAX_BODY_CHARS) {
      return fail(400, "invalid_body", `body must be text of 1 to ${MAX_BODY_CHARS} characters.`);
    }
    const saved = saveMessage({ id: input.id, senderId: me.id, receiverId: peer.id, body });
    if (saved.kind === "conflict") {
      return fail(409, "message_id_taken", "Another message already has this id.");
    }
    if (saved.kind === "duplicate") return NextResponse.json({ message: saved.message, published: null });
    const published = await publish(saved.message, me, peer);
    return NextResponse.json({ message: saved.message, published }, { status: 201 });
  });
}

/** `new-message` to the chat channel, and `message-notification` to the receiver's connections. */
async function publish(message: Message, sender: User, receiver: User): Promise<boolean> {
  const delivered = await bestEffort("new-message", (p) =>
    p.trigger(chatChannel(sender.id, receiver.id), EVENTS.newMessage, message),
  );
  if (findUser(receiver.id)?.notifications) {
    const note: MessageNotification = {
      messageId: message.id,
      senderId: sender.id,
      senderName: sender.name,
      preview: message.body.length > 100 ? `${message.body.slice(0, 99)}…` : message.body,
    };
    // Every connection signed in as the receiver gets it; a browser that has this chat open
    // on screen does not show it (requirement 8.1).
    await bestEffort("message-notification", (p) => p.sendToUser(receiver.id, EVENTS.messageNotification, note));
  }
  return delivered;
}

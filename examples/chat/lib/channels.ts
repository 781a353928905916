// Channel and event names, shared by the API routes and the browser. The only place that knows
// how a chat channel is named.

/** Presence channel every signed-in browser joins; its members are the users online. */
export const ONLINE_CHANNEL = "presence-online";

/** Events on a chat channel (`private-chat-{a}-{b}`). */
export const EVENTS = {
  /** Server → both users: a message was saved; data is the whole `Message`. */
  newMessage: "new-message",
  /** Server → both users: the receiver has seen messages; data is `ReadReceipt`. */
  messageRead: "message-read",
  /** Browser → the other user (client event): started typing; data is `TypingEvent`. */
  typingStart: "client-typing-start",
  /** Browser → the other user (client event): stopped typing for 3 s, or sent. */
  typingStop: "client-typing-stop",
  /** Server → everyone on the presence channel: a user logged in or out; data is `StatusChange`. */
  userStatusChange: "user-status-change",
  /** Server → one user (`sendToUser`): a message arrived; data is `MessageNotification`. */
  messageNotification: "message-notification",
} as const;

/** Longest message body, in characters: the event (the whole message) stays under 10 KiB. */
export const MAX_BODY_CHARS = 2000;

/** Messages per answer of `GET /api/messages`; while catching up, the browser asks again while pages come back full. */
export const MESSAGES_PAGE = 200;

/** User ids: lowercase letters, digits and underscores, so a chat channel name parses back. */
export const USER_ID_PATTERN = /^[a-z0-9_]{1,32}$/;

const CHAT_PREFIX = "private-chat-";

/** The channel of the conversation between two users: the same name whichever side asks. */
export function chatChannel(a: string, b: string): string {
  const [first, second] = a < b ? [a, b] : [b, a];
  return `${CHAT_PREFIX}${first}-${second}`;
}

/**
 * The two users of a chat channel name, or null when the name is not one `chatChannel` makes
 * (wrong prefix, malformed ids, the same user twice, or the ids not in order).
 */
export function parseChatChannel(name: string): [string, string] | null {
  if (!name.startsWith(CHAT_PREFIX)) return null;
  const parts = name.slice(CHAT_PREFIX.length).split("-");
  if (parts.length !== 2) return null;
  const [a, b] = parts;
  if (!USER_ID_PATTERN.test(a) || !USER_ID_PATTERN.test(b) || a >= b) return null;
  return [a, b];
}

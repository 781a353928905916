import "server-only";
import Database from "better-sqlite3";
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { databasePath } from "./config";
import type { Message, User } from "./types";

// The app's own data: users, login sessions and messages, in one SQLite file. Opened on first
// use (never while `next build` runs) and kept for the life of the process.

/** The people you can log in as; the example has no sign-up. */
const SEED_USERS: ReadonlyArray<readonly [string, string]> = [
  ["alice", "Alice Martin"],
  ["bob", "Bob Okafor"],
  ["carol", "Carol Nguyen"],
  ["dave", "Dave Kowalski"],
];

const SCHEMA = `
CREATE TABLE IF NOT EXISTS users (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  last_active INTEGER,
  notifications INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS sessions (
  token_hash TEXT PRIMARY KEY,
  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  sender_id TEXT NOT NULL REFERENCES users(id),
  receiver_id TEXT NOT NULL REFERENCES users(id),
  body TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  read_at INTEGER
);
CREATE INDEX IF NOT EXISTS messages_pair ON messages(sender_id, receiver_id, seq);
`;

const holder = globalThis as typeof globalThis & { chatDb?: Database.Database };

function db(): Database.Database {
  if (!holder.chatDb) {
    const file = databasePath();
    fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    const conn = new Database(file);
    conn.pragma("journal_mode = WAL");
    conn.pragma("busy_timeout = 5000");
    conn.pragma("foreign_keys = ON");
    conn.exec(SCHEMA);
    const seed = conn.prepare("INSERT OR IGNORE INTO users (id, name) VALUES (?, ?)");
    conn.transaction(() => SEED_USERS.forEach(([id, name]) => seed.run(id, name)))();
    holder.chatDb = conn;
  }
  return holder.chatDb;
}

interface UserRow {
  id: string;
  name: string;
  last_active: number | null;
  notifications: number;
}

interface MessageRow {
  seq: number;
  id: string;
  sender_id: string;
  receiver_id: string;
  body: string;
  created_at: number;
  read_at: number | null;
}

const toUser = (r: UserRow): User => ({ id: r.id, name: r.name, lastActive: r.last_active });

const toMessage = (r: MessageRow): Message => ({
  id: r.id,
  seq: r.seq,
  senderId: r.sender_id,
  receiverId: r.receiver_id,
  body: r.body,
  createdAt: r.created_at,
  readAt: r.read_at,
});

export function listUsers(): User[] {
  return (db().prepare("SELECT * FROM users ORDER BY name").all() as UserRow[]).map(toUser);
}

export function findUser(id: string): (User & { notifications: boolean }) | null {
  const row = db().prepare("SELECT * FROM users WHERE id = ?").get(id) as UserRow | undefined;
  return row ? { ...toUser(row), notifications: row.notifications === 1 } : null;
}

/** Records that the user did something now (requirement 7.5); returns the timestamp. */
export function touchUser(id: string, now = Date.now()): number {
  db().prepare("UPDATE users SET last_active = ? WHERE id = ?").run(now, id);
  return now;
}

export function setNotifications(id: string, on: boolean): void {
  db().prepare("UPDATE users SET notifications = ? WHERE id = ?").run(on ? 1 : 0, id);
}

const hashToken = (token: string) => createHash("sha256").update(token).digest("hex");

/** Starts a session; the returned token goes into the cookie, only its hash is stored. */
export function createSession(userId: string): string {
  const token = randomBytes(32).toString("base64url");
  db().prepare("INSERT INTO sessions (token_hash, user_id, created_at) VALUES (?, ?, ?)")
    .run(hashToken(token), userId, Date.now());
  return token;
}

export function sessionUserId(token: string): string | null {
  const row = db().prepare("SELECT user_id FROM sessions WHERE token_hash = ?").get(hashToken(token)) as
    | { user_id: string }
    | undefined;
  return row?.user_id ?? null;
}

export function deleteSession(token: string): void {
  db().prepare("DELETE FROM sessions WHERE token_hash = ?").run(hashToken(token));
}

export type SaveOutcome =
  | { kind: "created"; message: Message }
  | { kind: "duplicate"; message: Message }
  | { kind: "conflict" };

/**
 * Stores a message under the id its browser chose. Sending the same id again (a retry from the
 * offline queue) returns the stored message; an id another message already has is a conflict.
 */
export function saveMessage(input: { id: string; senderId: string; receiverId: string; body: string }): SaveOutcome {
  const conn = db();
  return conn.transaction((): SaveOutcome => {
    const existing = conn.prepare("SELECT * FROM messages WHERE id = ?").get(input.id) as MessageRow | undefined;
    if (existing) {
      const same = existing.sender_id === input.senderId && existing.receiver_id === input.receiverId
        && existing.body === input.body;
      return same ? { kind: "duplicate", message: toMessage(existing) } : { kind: "conflict" };
    }
    const row = conn.prepare(
      "INSERT INTO messages (id, sender_id, receiver_id, body, created_at) VALUES (?, ?, ?, ?, ?) RETURNING *",
    ).get(input.id, input.senderId, input.receiverId, input.body, Date.now()) as MessageRow;
    return { kind: "created", message: toMessage(row) };
  })();
}

/**
 * The conversation between two users, oldest first, at most `limit` messages: after `afterSeq`
 * the ones that follow it (catching up, page by page); from the start (0) the latest ones.
 */
export function conversation(a: string, b: string, afterSeq: number, limit: number): Message[] {
  const order = afterSeq > 0 ? "ASC" : "DESC";
  const rows = db().prepare(
    `SELECT * FROM (
       SELECT * FROM messages
       WHERE ((sender_id = @a AND receiver_id = @b) OR (sender_id = @b AND receiver_id = @a)) AND seq > @after
       ORDER BY seq ${order} LIMIT @limit
     ) ORDER BY seq`,
  ).all({ a, b, after: afterSeq, limit }) as MessageRow[];
  return rows.map(toMessage);
}

/**
 * Marks as read, in one statement, the unread messages `senderId` sent to `readerId` up to
 * `upToSeq`. Only the receiver can do this: the reader is always the receiver in the query
 * (requirement 6.5). Returns the ids it changed and the time.
 */
export function markRead(readerId: string, senderId: string, upToSeq: number): { ids: string[]; readAt: number } {
  const readAt = Date.now();
  const rows = db().prepare(
    `UPDATE messages SET read_at = @readAt
     WHERE receiver_id = @reader AND sender_id = @sender AND seq <= @upTo AND read_at IS NULL
     RETURNING id`,
  ).all({ readAt, reader: readerId, sender: senderId, upTo: upToSeq }) as { id: string }[];
  return { ids: rows.map((r) => r.id), readAt };
}

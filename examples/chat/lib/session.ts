import "server-only";
import { cookies } from "next/headers";
import { createSession, deleteSession, findUser, sessionUserId, touchUser } from "./db";
import type { User } from "./types";

// A minimal login: pick a user, get a random session token in an HttpOnly cookie. Enough to show
// channel authorization; a real app plugs its own authentication in here.

export const SESSION_COOKIE = "chat_session";

/** The logged-in user, or null. Every authenticated request also refreshes `lastActive`. */
export async function currentUser(options: { touch?: boolean } = {}): Promise<(User & { notifications: boolean }) | null> {
  const token = (await cookies()).get(SESSION_COOKIE)?.value;
  if (!token) return null;
  const userId = sessionUserId(token);
  const user = userId ? findUser(userId) : null;
  if (user && options.touch !== false) user.lastActive = touchUser(user.id);
  return user;
}

export async function logIn(userId: string, secure: boolean): Promise<void> {
  const token = createSession(userId);
  (await cookies()).set(SESSION_COOKIE, token, {
    httpOnly: true,
    sameSite: "lax",
    secure,
    path: "/",
    maxAge: 60 * 60 * 24 * 30,
  });
}

export async function logOut(): Promise<void> {
  const jar = await cookies();
  const token = jar.get(SESSION_COOKIE)?.value;
  if (token) deleteSession(token);
  jar.delete(SESSION_COOKIE);
}

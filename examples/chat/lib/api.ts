"use client";

import type { ApiError, Message, UserWithStatus } from "./types";

// The browser's calls to the app's API routes: the only client code that knows their URLs.

/** A refusal from the API (4xx): retrying the same request will not help. */
export class ApiRefusal extends Error {
  constructor(readonly status: number, readonly body: ApiError) {
    super(body.message);
  }
}

/** The network or the server failed (no answer, or 5xx): worth retrying later. */
export class ApiUnavailable extends Error {}

async function call<T>(path: string, init?: RequestInit): Promise<T> {
  let res: Response;
  try {
    res = await fetch(path, {
      ...init,
      headers: init?.body ? { "content-type": "application/json" } : undefined,
      cache: "no-store",
    });
  } catch (e) {
    throw new ApiUnavailable(e instanceof Error ? e.message : String(e));
  }
  if (res.status >= 500) throw new ApiUnavailable(`HTTP ${res.status}`);
  if (res.status === 204) return undefined as T;
  const body: unknown = await res.json().catch(() => null);
  if (!res.ok) {
    const err = body as Partial<ApiError> | null;
    throw new ApiRefusal(res.status, { error: err?.error ?? "http_error", message: err?.message ?? `HTTP ${res.status}` });
  }
  return body as T;
}

export const api = {
  logIn: (userId: string) => call<{ user: { id: string; name: string } }>("/api/session", {
    method: "POST",
    body: JSON.stringify({ userId }),
  }),
  logOut: () => call<void>("/api/session", { method: "DELETE" }),
  users: () => call<{ users: UserWithStatus[] }>("/api/users"),
  messages: (peer: string, after = 0) =>
    call<{ messages: Message[] }>(`/api/messages?with=${encodeURIComponent(peer)}&after=${after}`),
  send: (m: { id: string; to: string; body: string }) =>
    call<{ message: Message; published: boolean | null }>("/api/messages", { method: "POST", body: JSON.stringify(m) }),
  markRead: (from: string, upTo: number) => call<{ ids: string[]; readAt: number }>("/api/messages/read", {
    method: "POST",
    body: JSON.stringify({ from, upTo }),
  }),
  heartbeat: () => call<{ lastActive: number }>("/api/activity", { method: "POST" }),
  /** On page close: a beacon, which the browser delivers even as the page goes away. */
  farewell: () => navigator.sendBeacon("/api/activity"),
  setNotifications: (on: boolean) => call<{ notifications: boolean }>("/api/preferences", {
    method: "PATCH",
    body: JSON.stringify({ notifications: on }),
  }),
};

/** A message id: a UUID (also where `crypto.randomUUID` is missing, as on plain-http pages). */
export function newMessageId(): string {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

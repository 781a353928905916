import "server-only";
import Pusher from "pusher";
import { serverPusherConfig } from "../config";

// One `pusher` SDK instance per server process (requirement 1.3). Kept on `globalThis` so that
// `next dev`'s module reloading does not create a new one on every edit.

/** REST calls give up after this long, so a send never waits on an unreachable server. */
const REST_TIMEOUT_MS = 2000;

const holder = globalThis as typeof globalThis & { chatPusher?: Pusher };

export function pusherServer(): Pusher {
  if (!holder.chatPusher) {
    const c = serverPusherConfig();
    const base = { appId: c.appId, key: c.key, secret: c.secret, useTLS: c.useTLS, timeout: REST_TIMEOUT_MS };
    holder.chatPusher = c.host
      ? new Pusher({ ...base, host: c.host, ...(c.port ? { port: String(c.port) } : {}) })
      : new Pusher({ ...base, cluster: c.cluster });
  }
  return holder.chatPusher;
}

/**
 * Runs a REST call whose failure must not fail the request (requirement 9.2): logs the reason
 * (never the credentials) and answers whether it went through.
 */
export async function bestEffort(what: string, call: (p: Pusher) => Promise<unknown>): Promise<boolean> {
  try {
    await call(pusherServer());
    return true;
  } catch (e) {
    console.warn(`[chat] ${what} failed: ${describe(e)}`);
    return false;
  }
}

/** A one-line reason for an SDK error: the HTTP status and body, or the network error. */
export function describe(e: unknown): string {
  // The SDK's RequestError also carries the signed URL; it is left out on purpose.
  const { status, body, error } = (e ?? {}) as { status?: unknown; body?: unknown; error?: unknown };
  if (typeof status === "number") return `HTTP ${status} ${typeof body === "string" ? body.slice(0, 200) : ""}`.trim();
  if (error instanceof Error) return error.message;
  return e instanceof Error ? e.message : String(e);
}

/** The ids of the users on a presence channel, from the server's REST API; null if unreachable. */
export async function presenceUserIds(channel: string): Promise<Set<string> | null> {
  try {
    const res = await pusherServer().get({ path: `/channels/${channel}/users` });
    const body = (await res.json()) as { users?: { id: string }[] };
    return new Set((body.users ?? []).map((u) => String(u.id)));
  } catch (e) {
    console.warn(`[chat] listing ${channel} failed: ${describe(e)}`);
    return null;
  }
}

import { NextResponse } from "next/server";
import { ONLINE_CHANNEL } from "@/lib/channels";
import { listUsers } from "@/lib/db";
import { withUser } from "@/lib/http";
import { presenceUserIds } from "@/lib/pusher/server";
import type { UserWithStatus } from "@/lib/types";

/**
 * Everyone with their `lastActive` and whether they are online (members of the presence
 * channel, asked of the server's REST API). The browser uses this when its own WebSocket is
 * down (the polling fallback) and to refresh "last seen" after someone leaves.
 */
export async function GET() {
  return withUser(async () => {
    const online = await presenceUserIds(ONLINE_CHANNEL);
    const users: UserWithStatus[] = listUsers().map((u) => ({ ...u, online: online ? online.has(u.id) : null }));
    return NextResponse.json({ users });
  });
}

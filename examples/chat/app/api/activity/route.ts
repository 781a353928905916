import { NextResponse } from "next/server";
import { withUser } from "@/lib/http";

/**
 * A heartbeat from an open chat (and a beacon when the page is closed): refreshes the user's
 * `lastActive` (requirement 7.5), which `withUser` already does for every request.
 */
export async function POST() {
  return withUser((user) => NextResponse.json({ lastActive: user.lastActive }));
}

import { NextResponse } from "next/server";
import { setNotifications } from "@/lib/db";
import { badJson, fail, jsonBody, withUser } from "@/lib/http";

/** `{ "notifications": false }` stops message notifications for this user (requirement 8.5). */
export async function PATCH(req: Request) {
  return withUser(async (user) => {
    const body = await jsonBody(req);
    if (!body) return badJson();
    if (typeof body.notifications !== "boolean") {
      return fail(400, "invalid_preferences", "notifications must be true or false.");
    }
    setNotifications(user.id, body.notifications);
    return NextResponse.json({ notifications: body.notifications });
  });
}

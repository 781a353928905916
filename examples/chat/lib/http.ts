import "server-only";
import { NextResponse } from "next/server";
import { ConfigError } from "./config";
import { currentUser } from "./session";
import type { ApiError, User } from "./types";

// Helpers for the route handlers: every error is a JSON body `{ error, message }` with a status.

export function fail(status: number, error: string, message: string): NextResponse<ApiError> {
  return NextResponse.json({ error, message }, { status });
}

export const unauthenticated = () => fail(401, "unauthenticated", "Log in first.");

/** The request body as a JSON object, or null when it is not one. */
export async function jsonBody(req: Request): Promise<Record<string, unknown> | null> {
  try {
    const body: unknown = await req.json();
    return body !== null && typeof body === "object" && !Array.isArray(body) ? (body as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

export const badJson = () => fail(400, "invalid_body", "The request body must be a JSON object.");

/**
 * Runs a route handler; an exception becomes a 500 with a JSON body (the cause is logged, and
 * shown only when it is the app's own configuration).
 */
export async function guarded(handler: () => Promise<Response> | Response): Promise<Response> {
  try {
    return await handler();
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(`[chat] configuration: ${e.message}`);
      return fail(500, "misconfigured", e.message);
    }
    console.error("[chat] request failed:", e);
    return fail(500, "internal", "Something went wrong on the server.");
  }
}

/** Runs the handler with the logged-in user, or answers 401. */
export async function withUser(
  handler: (user: User & { notifications: boolean }) => Promise<Response> | Response,
): Promise<Response> {
  return guarded(async () => {
    const user = await currentUser();
    return user ? handler(user) : unauthenticated();
  });
}

/** Whether the browser reached us over https (directly or through a proxy that says so). */
export function isHttps(req: Request): boolean {
  const forwarded = req.headers.get("x-forwarded-proto");
  return (forwarded ?? new URL(req.url).protocol.replace(":", "")) === "https";
}

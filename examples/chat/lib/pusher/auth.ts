import "server-only";
import { fail } from "../http";

// What pusher-js posts to the authorization endpoints: a form with `socket_id` (and
// `channel_name` for channels).

const SOCKET_ID = /^\d+\.\d+$/;

export async function authForm(req: Request, fields: readonly string[]): Promise<Record<string, string> | Response> {
  let form: URLSearchParams;
  try {
    form = new URLSearchParams(await req.text());
  } catch {
    return fail(400, "invalid_body", "Expected a form body (application/x-www-form-urlencoded).");
  }
  const out: Record<string, string> = {};
  for (const field of fields) {
    const value = form.get(field);
    if (!value) return fail(400, "missing_field", `${field} is required.`);
    out[field] = value;
  }
  if (!SOCKET_ID.test(out.socket_id ?? "")) return fail(400, "invalid_socket_id", "socket_id is malformed.");
  return out;
}

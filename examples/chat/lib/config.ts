import "server-only";
import type { PublicPusherConfig } from "./types";

// Configuration comes from environment variables only, read when a request needs it (not when
// the app is built), so one build can be pointed at any server. `NEXT_PUBLIC_*` values are read
// here on the server too and handed to the browser with the page, for the same reason.

export class ConfigError extends Error {}

/** Reads a variable by computed name, so Next.js never inlines it at build time. */
function read(name: string): string | undefined {
  const value = process.env[name];
  return value === undefined || value.trim() === "" ? undefined : value.trim();
}

function required(name: string): string {
  const value = read(name);
  if (value === undefined) {
    throw new ConfigError(`${name} is not set (see examples/chat/README.md, "Configuration")`);
  }
  return value;
}

function port(name: string): number | undefined {
  const value = read(name);
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 65535) {
    throw new ConfigError(`${name} must be a port number (1-65535), not ${JSON.stringify(value)}`);
  }
  return n;
}

function flag(name: string): boolean | undefined {
  const value = read(name)?.toLowerCase();
  if (value === undefined) return undefined;
  if (["1", "true", "yes", "on"].includes(value)) return true;
  if (["0", "false", "no", "off"].includes(value)) return false;
  throw new ConfigError(`${name} must be true or false, not ${JSON.stringify(value)}`);
}

const production = () => process.env.NODE_ENV === "production";

export interface ServerPusherConfig {
  appId: string;
  key: string;
  secret: string;
  cluster: string;
  host: string | null;
  port: number | null;
  useTLS: boolean;
}

let warnedPlainText = false;

function warnIfPlainText(host: string | null, useTLS: boolean, variable: string) {
  const loopback = host !== null && /^(127\.\d+\.\d+\.\d+|localhost|\[?::1\]?)$/.test(host);
  if (production() && !useTLS && !loopback && !warnedPlainText) {
    warnedPlainText = true;
    console.warn(`[chat] ${variable}=false in production: traffic to ${host} is not encrypted`);
  }
}

/** Credentials and address for the server SDK (`pusher`): the REST API. */
export function serverPusherConfig(): ServerPusherConfig {
  const host = read("PUSHER_HOST") ?? null;
  // TLS unless told otherwise in production (requirement 1.5); plain on a developer's machine.
  const useTLS = flag("PUSHER_USE_TLS") ?? (host === null || production());
  warnIfPlainText(host, useTLS, "PUSHER_USE_TLS");
  return {
    appId: required("PUSHER_APP_ID"),
    key: required("PUSHER_KEY"),
    secret: required("PUSHER_SECRET"),
    cluster: required("PUSHER_CLUSTER"),
    host,
    port: port("PUSHER_PORT") ?? null,
    useTLS,
  };
}

/** What the browser's pusher-js needs; `NEXT_PUBLIC_PUSHER_*` override the server's values. */
export function publicPusherConfig(): PublicPusherConfig {
  const server = serverPusherConfig();
  const host = read("NEXT_PUBLIC_PUSHER_HOST") ?? server.host;
  const useTLS = flag("NEXT_PUBLIC_PUSHER_USE_TLS") ?? server.useTLS;
  warnIfPlainText(host, useTLS, "NEXT_PUBLIC_PUSHER_USE_TLS");
  return {
    key: read("NEXT_PUBLIC_PUSHER_KEY") ?? server.key,
    cluster: read("NEXT_PUBLIC_PUSHER_CLUSTER") ?? server.cluster,
    host,
    port: port("NEXT_PUBLIC_PUSHER_PORT") ?? server.port,
    useTLS,
  };
}

/** The SQLite file for users, sessions and messages. */
export function databasePath(): string {
  return read("CHAT_DATABASE_PATH") ?? "data/chat.db";
}

"use client";

import Pusher from "pusher-js";
import type { PublicPusherConfig } from "../types";

// The browser's one pusher-js connection (requirement 1.4), created on first use with the
// configuration the server rendered into the page, and shared by every component.

let instance: Pusher | null = null;

export function pusherClient(config: PublicPusherConfig): Pusher {
  if (instance) return instance;
  const address = config.host
    ? {
        wsHost: config.host,
        ...(config.port ? { wsPort: config.port, wssPort: config.port } : {}),
        enabledTransports: ["ws" as const, "wss" as const],
      }
    : {};
  instance = new Pusher(config.key, {
    cluster: config.cluster,
    forceTLS: config.useTLS,
    ...address,
    disableStats: true,
    channelAuthorization: { endpoint: "/api/pusher/auth", transport: "ajax" },
    userAuthentication: { endpoint: "/api/pusher/user-auth", transport: "ajax" },
  });
  return instance;
}

/** Closes the connection (on logout); the next `pusherClient` call makes a new one. */
export function closePusherClient(): void {
  instance?.disconnect();
  instance = null;
}

"use client";

import Link from "next/link";
import { usePathname, useRouter } from "next/navigation";
import type { Members, PresenceChannel } from "pusher-js";
import type Pusher from "pusher-js";
import { createContext, useCallback, useContext, useEffect, useMemo, useRef, useState, type ReactNode } from "react";
import { api, ApiRefusal, newMessageId } from "@/lib/api";
import { EVENTS, ONLINE_CHANNEL } from "@/lib/channels";
import { closePusherClient, pusherClient } from "@/lib/pusher/client";
import type { Message, MessageNotification, PublicPusherConfig, StatusChange, User } from "@/lib/types";
import { Outbox, type QueuedMessage } from "./outbox";

// The signed-in part of the app: one pusher-js connection for the whole session, who is online,
// the connection status and the fallback when the server cannot be reached, the queue of
// messages waiting for the network, and notifications. Conversations get all of it from
// `useChat()`.

/** While the real-time connection is down, the conversation and the user list are polled this often (requirement 9.5). */
export const POLL_INTERVAL_MS = 5000;
/** After the server closed the connection for good (e.g. `terminate_connections`), connect again after this long. */
const RECONNECT_AFTER_REFUSAL_MS = 2000;
/** `lastActive` is refreshed this often while the page is open (requirement 7.5). */
const HEARTBEAT_MS = 30_000;
const TOAST_MS = 10_000;

export type ConnectionMode = "live" | "connecting" | "polling";

interface ChatContextValue {
  me: User;
  pusher: Pusher;
  mode: ConnectionMode;
  /** Increases whenever conversations should fetch what they may have missed: real-time came back, or a poll is due. */
  syncRound: number;
  /** Messages saved by the API on this page's behalf (sent or retried from the queue). */
  saved: EventTarget;
  queued: QueuedMessage[];
  send: (to: string, body: string) => void;
  discard: (id: string) => void;
  /** The conversation on screen, so its messages raise no notification. */
  setActivePeer: (peer: string | null) => void;
}

const ChatContext = createContext<ChatContextValue | null>(null);

export function useChat(): ChatContextValue {
  const value = useContext(ChatContext);
  if (!value) throw new Error("useChat outside <ChatShell>");
  return value;
}

interface Toast extends MessageNotification {
  shownAt: number;
}

interface Props {
  me: User;
  config: PublicPusherConfig;
  users: User[];
  notifications: boolean;
  children: ReactNode;
}

export function ChatShell({ me, config, users: initialUsers, notifications: initialNotifications, children }: Props) {
  const router = useRouter();
  const pathname = usePathname();
  // Created in the browser only (never while the page is rendered on the server).
  const [pusher, setPusher] = useState<Pusher | null>(null);
  useEffect(() => setPusher(pusherClient(config)), [config]);
  const [connState, setConnState] = useState("initialized");
  const [users, setUsers] = useState(initialUsers);
  /** Who is online; null when nobody can tell (our connection and the server's REST API both down). */
  const [online, setOnline] = useState<Set<string> | null>(() => new Set());
  const [mode, setMode] = useState<ConnectionMode>("connecting");
  const [syncRound, setSyncRound] = useState(0);
  const [toasts, setToasts] = useState<Toast[]>([]);
  const [unread, setUnread] = useState<Record<string, number>>({});
  const [notifications, setNotifications] = useState(initialNotifications);
  const [permission, setPermission] = useState<NotificationPermission | "unsupported">("unsupported");
  const [queued, setQueued] = useState<QueuedMessage[]>([]);
  const activePeer = useRef<string | null>(null);
  const leaving = useRef(false);
  const saved = useMemo(() => new EventTarget(), []);

  const refreshUsers = useCallback(async () => {
    try {
      const { users: fresh } = await api.users();
      setUsers(fresh);
      // Only believe the server's view of who is online while our own presence channel is down.
      if (pusher?.connection.state !== "connected") {
        const known = fresh.every((u) => u.online !== null);
        setOnline(known ? new Set(fresh.filter((u) => u.online).map((u) => u.id)) : null);
      }
    } catch (e) {
      console.warn("[chat] could not refresh the user list:", e);
    }
  }, [pusher]);

  // The offline queue (requirement 9.3): sends now, or keeps the message until the network is back.
  const outbox = useMemo(
    () =>
      new Outbox(me.id, {
        send: async (m) => (await api.send({ id: m.id, to: m.to, body: m.body })).message,
        onSaved: (message: Message) => saved.dispatchEvent(new CustomEvent<Message>("message", { detail: message })),
        onChange: setQueued,
        isRefusal: (e) => e instanceof ApiRefusal,
      }),
    [me.id, saved],
  );
  useEffect(() => {
    outbox.load();
    const retry = () => void outbox.flush();
    window.addEventListener("online", retry);
    const timer = setInterval(retry, POLL_INTERVAL_MS);
    return () => {
      window.removeEventListener("online", retry);
      clearInterval(timer);
    };
  }, [outbox]);

  // Connection status, the app's own reconnection after a refusal, and the polling fallback.
  useEffect(() => {
    if (!pusher) return;
    let pollTimer: ReturnType<typeof setInterval> | null = null;
    let reconnectTimer: ReturnType<typeof setTimeout> | null = null;
    let wasConnected = false;
    let polled = false;
    const apply = (state: string) => {
      setConnState(state);
      if (state === "connected") {
        setMode("live");
        if (pollTimer) clearInterval(pollTimer);
        pollTimer = null;
        polled = false;
        if (wasConnected) {
          // Back after a drop: fetch what was missed (requirement 4 + reconnection).
          setSyncRound((n) => n + 1);
          void refreshUsers();
        }
        wasConnected = true;
        void outbox.flush();
        return;
      }
      setMode(polled ? "polling" : "connecting");
      if (!pollTimer) {
        pollTimer = setInterval(() => {
          polled = true;
          setMode("polling");
          setSyncRound((n) => n + 1);
          void refreshUsers();
        }, POLL_INTERVAL_MS);
      }
      // pusher-js does not reconnect after a 4000-4099 close (e.g. 4009 when an operator
      // terminates the user's connections); the session is still valid, so the app does.
      if ((state === "disconnected" || state === "failed") && !leaving.current && !reconnectTimer) {
        reconnectTimer = setTimeout(() => {
          reconnectTimer = null;
          if (!leaving.current) pusher.connect();
        }, RECONNECT_AFTER_REFUSAL_MS);
      }
    };
    const onChange = ({ previous, current }: { previous: string; current: string }) => {
      console.info(`[chat] connection ${previous} -> ${current}`);
      apply(current);
    };
    const onError = (err: unknown) => console.warn("[chat] real-time connection error; using the API meanwhile:", err);
    pusher.connection.bind("state_change", onChange);
    pusher.connection.bind("error", onError);
    apply(pusher.connection.state);
    pusher.signin();
    return () => {
      pusher.connection.unbind("state_change", onChange);
      pusher.connection.unbind("error", onError);
      if (pollTimer) clearInterval(pollTimer);
      if (reconnectTimer) clearTimeout(reconnectTimer);
    };
  }, [pusher, outbox, refreshUsers]);

  // Who is online (requirement 7): the presence channel's members, live.
  useEffect(() => {
    if (!pusher) return;
    const channel = pusher.subscribe(ONLINE_CHANNEL) as PresenceChannel;
    const fromMembers = (members: Members) => {
      const ids = new Set<string>();
      members.each((m: { id: string }) => ids.add(String(m.id)));
      setOnline(ids);
    };
    const added = (m: { id: string }) => setOnline((s) => new Set(s ?? []).add(String(m.id)));
    const removed = (m: { id: string }) => {
      // Still online if another of their tabs remains (pusher-js only reports the last one leaving).
      setOnline((s) => {
        const next = new Set(s ?? []);
        next.delete(String(m.id));
        return next;
      });
      void refreshUsers(); // their `lastActive`, for "last seen"
    };
    const statusChanged = (change: StatusChange) => {
      setUsers((list) => list.map((u) => (u.id === change.userId ? { ...u, lastActive: change.lastActive } : u)));
      if (!change.online) removed({ id: change.userId });
    };
    channel.bind("pusher:subscription_succeeded", fromMembers);
    channel.bind("pusher:member_added", added);
    channel.bind("pusher:member_removed", removed);
    channel.bind(EVENTS.userStatusChange, statusChanged);
    return () => {
      channel.unbind_all();
      pusher.unsubscribe(ONLINE_CHANNEL);
    };
  }, [pusher, refreshUsers]);

  // Notifications for messages in conversations not on screen (requirement 8).
  const openChat = useCallback(
    (peer: string) => {
      setToasts((list) => list.filter((t) => t.senderId !== peer));
      router.push(`/chat/${peer}`);
    },
    [router],
  );
  useEffect(() => {
    setPermission(typeof Notification === "undefined" ? "unsupported" : Notification.permission);
    if (!pusher) return;
    const notify = (note: MessageNotification) => {
      if (activePeer.current === note.senderId && document.visibilityState === "visible") return;
      setUnread((u) => ({ ...u, [note.senderId]: (u[note.senderId] ?? 0) + 1 }));
      setToasts((list) => [...list.filter((t) => t.messageId !== note.messageId), { ...note, shownAt: Date.now() }]);
      if (typeof Notification !== "undefined" && Notification.permission === "granted") {
        try {
          const shown = new Notification(note.senderName, { body: note.preview, tag: note.messageId });
          shown.onclick = () => {
            window.focus();
            openChat(note.senderId);
            shown.close();
          };
        } catch (e) {
          // Some browsers (Chrome on Android) only show notifications from a service worker.
          console.warn("[chat] browser notification not shown:", e);
        }
      }
    };
    pusher.user.bind(EVENTS.messageNotification, notify);
    return () => {
      pusher.user.unbind(EVENTS.messageNotification, notify);
    };
  }, [pusher, openChat]);
  useEffect(() => {
    if (toasts.length === 0) return;
    const timer = setTimeout(() => setToasts((list) => list.filter((t) => Date.now() - t.shownAt < TOAST_MS)), TOAST_MS);
    return () => clearTimeout(timer);
  }, [toasts]);

  // `lastActive`: a heartbeat while the page is visible, a beacon when it closes.
  useEffect(() => {
    const beat = () => {
      if (document.visibilityState === "visible") api.heartbeat().catch(() => undefined);
    };
    const timer = setInterval(beat, HEARTBEAT_MS);
    const bye = () => api.farewell();
    window.addEventListener("pagehide", bye);
    return () => {
      clearInterval(timer);
      window.removeEventListener("pagehide", bye);
    };
  }, []);

  const setActivePeer = useCallback((peer: string | null) => {
    activePeer.current = peer;
    if (peer) {
      setUnread((u) => ({ ...u, [peer]: 0 }));
      setToasts((list) => list.filter((t) => t.senderId !== peer));
    }
  }, []);

  const logOut = async () => {
    leaving.current = true;
    closePusherClient();
    outbox.forget();
    await api.logOut().catch(() => undefined);
    router.replace("/");
    router.refresh();
  };

  const toggleNotifications = async () => {
    try {
      const { notifications: on } = await api.setNotifications(!notifications);
      setNotifications(on);
      if (on && typeof Notification !== "undefined" && Notification.permission === "default") {
        setPermission(await Notification.requestPermission());
      }
    } catch (e) {
      console.warn("[chat] could not change the notification setting:", e);
    }
  };

  const value: ChatContextValue | null = pusher && {
    me,
    pusher,
    mode,
    syncRound,
    saved,
    queued,
    send: (to, body) => outbox.add({ id: newMessageId(), to, body, createdAt: Date.now() }),
    discard: (id) => outbox.remove(id),
    setActivePeer,
  };

  const others = users.filter((u) => u.id !== me.id);
  return (
    <ChatContext.Provider value={value}>
      <div className="shell">
        <aside className="sidebar">
          <header className="me">
            <strong data-testid="me">{me.name}</strong>
            <ConnectionBadge mode={mode} state={connState} />
          </header>
          <nav aria-label="Conversations">
            <ul className="people" data-testid="people">
              {others.map((u) => {
                const status = online === null ? "unknown" : online.has(u.id) ? "online" : "offline";
                return (
                <li key={u.id} data-user={u.id} data-online={status === "online" ? "true" : status === "offline" ? "false" : "unknown"}>
                  <Link href={`/chat/${u.id}`} className={pathname === `/chat/${u.id}` ? "current" : undefined}>
                    <span className={`dot ${status}`} aria-hidden />
                    <span className="who">
                      <span className="name">{u.name}</span>
                      <span className="status" data-testid={`status-${u.id}`}>
                        {status === "online" ? "online" : `${status === "unknown" ? "status unknown · " : ""}${lastSeen(u.lastActive)}`}
                      </span>
                    </span>
                    {(unread[u.id] ?? 0) > 0 && (
                      <span className="badge" data-testid={`unread-${u.id}`}>
                        {unread[u.id]}
                      </span>
                    )}
                  </Link>
                </li>
                );
              })}
            </ul>
          </nav>
          <footer className="settings">
            <button type="button" onClick={toggleNotifications} data-testid="toggle-notifications" aria-pressed={notifications}>
              Notifications: {notifications ? "on" : "off"}
            </button>
            {notifications && permission === "default" && (
              <button
                type="button"
                onClick={async () => setPermission(await Notification.requestPermission())}
              >
                Allow browser notifications
              </button>
            )}
            <button type="button" onClick={logOut} data-testid="logout">
              Log out
            </button>
          </footer>
        </aside>
        <main className="main">{value ? children : <p className="placeholder">Connecting…</p>}</main>
        <div className="toasts" aria-live="polite">
          {toasts.map((t) => (
            <button type="button" key={t.messageId} className="toast" data-testid="toast" data-sender={t.senderId}
              onClick={() => openChat(t.senderId)}>
              <strong>{t.senderName}</strong>
              <span>{t.preview}</span>
            </button>
          ))}
        </div>
      </div>
    </ChatContext.Provider>
  );
}

function ConnectionBadge({ mode, state }: { mode: ConnectionMode; state: string }) {
  const text = {
    live: "Connected",
    connecting: "Connecting…",
    polling: `Offline · checking every ${POLL_INTERVAL_MS / 1000} s`,
  }[mode];
  return (
    <span className={`connection ${mode}`} data-testid="connection" data-mode={mode} data-state={state} role="status">
      {text}
    </span>
  );
}

/** "last seen 5 min ago", from `lastActive`. */
function lastSeen(lastActive: number | null): string {
  if (lastActive === null) return "offline";
  const minutes = Math.floor((Date.now() - lastActive) / 60_000);
  if (minutes < 1) return "last seen just now";
  if (minutes < 60) return `last seen ${minutes} min ago`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return `last seen ${hours} h ago`;
  return `last seen ${new Date(lastActive).toLocaleDateString()}`;
}

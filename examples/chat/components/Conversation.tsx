"use client";

import { useCallback, useEffect, useRef, useState, type FormEvent } from "react";
import { api } from "@/lib/api";
import { chatChannel, EVENTS, MAX_BODY_CHARS, MESSAGES_PAGE } from "@/lib/channels";
import { TYPING_STALE_MS, TypingNotifier } from "@/lib/typing";
import type { Message, ReadReceipt, TypingEvent, User } from "@/lib/types";
import { useChat } from "./ChatShell";

// One open conversation: subscribed to its private channel while on screen (requirement 4),
// new messages merged by id, typing shown both ways (5), messages marked read while visible (6),
// and what was missed fetched whenever the shell says so (after a drop, or a poll).

/** Adds messages to a list, once per id, in stored order; a known read time is never lost. */
function merge(list: Message[], incoming: Message[]): Message[] {
  const byId = new Map(list.map((m) => [m.id, m]));
  for (const m of incoming) {
    const known = byId.get(m.id);
    byId.set(m.id, known ? { ...m, readAt: m.readAt ?? known.readAt } : m);
  }
  return [...byId.values()].sort((a, b) => a.seq - b.seq);
}

/** Where catching up starts: after the newest message, or before our oldest unread one (its receipt may have been missed). */
function catchUpCursor(list: Message[], me: string): number {
  const newest = list.length ? list[list.length - 1].seq : 0;
  const oldestUnread = list.find((m) => m.senderId === me && m.readAt === null);
  return oldestUnread ? Math.min(newest, oldestUnread.seq - 1) : newest;
}

export function Conversation({ peer }: { peer: User }) {
  const { me, pusher, syncRound, saved, queued, send, discard, setActivePeer } = useChat();
  const [messages, setMessages] = useState<Message[]>([]);
  const [loaded, setLoaded] = useState(false);
  const [peerTyping, setPeerTyping] = useState(false);
  const [draft, setDraft] = useState("");
  const [visible, setVisible] = useState(true);
  const messagesRef = useRef<Message[]>([]);
  messagesRef.current = messages;
  const typing = useRef<TypingNotifier | null>(null);
  const readUpTo = useRef(0);
  const list = useRef<HTMLOListElement>(null);
  const channelName = chatChannel(me.id, peer.id);

  const add = useCallback((incoming: Message[]) => setMessages((list) => merge(list, incoming)), []);

  const fetchSince = useCallback(
    async (after: number) => {
      try {
        let page = (await api.messages(peer.id, after)).messages;
        add(page);
        // Catching up after a long gap: keep reading while the pages come back full.
        while (after > 0 && page.length >= MESSAGES_PAGE) {
          page = (await api.messages(peer.id, page[page.length - 1].seq)).messages;
          add(page);
        }
        setLoaded(true);
      } catch (e) {
        console.warn("[chat] could not load messages:", e);
      }
    },
    [add, peer.id],
  );

  // Subscribe on open, unsubscribe on leave.
  useEffect(() => {
    setActivePeer(peer.id);
    const channel = pusher.subscribe(channelName);
    let staleTimer: ReturnType<typeof setTimeout> | null = null;
    const hideTyping = () => {
      if (staleTimer) clearTimeout(staleTimer);
      staleTimer = null;
      setPeerTyping(false);
    };
    channel.bind(EVENTS.newMessage, (m: Message) => {
      if (m.senderId === peer.id) hideTyping();
      add([m]);
    });
    channel.bind(EVENTS.messageRead, (r: ReadReceipt) => {
      const ids = new Set(r.ids);
      setMessages((list) => list.map((m) => (ids.has(m.id) && m.readAt === null ? { ...m, readAt: r.readAt } : m)));
    });
    channel.bind(EVENTS.typingStart, (t: TypingEvent) => {
      if (t.userId !== peer.id) return;
      setPeerTyping(true);
      if (staleTimer) clearTimeout(staleTimer);
      staleTimer = setTimeout(hideTyping, TYPING_STALE_MS);
    });
    channel.bind(EVENTS.typingStop, (t: TypingEvent) => {
      if (t.userId === peer.id) hideTyping();
    });
    const notifier = new TypingNotifier((kind) => {
      const event = kind === "start" ? EVENTS.typingStart : EVENTS.typingStop;
      const data: TypingEvent = { userId: me.id };
      channel.trigger(event, data);
    });
    typing.current = notifier;
    void fetchSince(0);
    return () => {
      notifier.dispose();
      typing.current = null;
      if (staleTimer) clearTimeout(staleTimer);
      channel.unbind_all();
      pusher.unsubscribe(channelName);
      setActivePeer(null);
    };
  }, [pusher, channelName, peer.id, me.id, add, fetchSince, setActivePeer]);

  // Catch up after a drop, and poll while real-time is down.
  useEffect(() => {
    if (syncRound > 0) void fetchSince(catchUpCursor(messagesRef.current, me.id));
  }, [syncRound, fetchSince, me.id]);

  // Our own sends (and retries from the queue) as the API saved them.
  useEffect(() => {
    const onSaved = (e: Event) => {
      const m = (e as CustomEvent<Message>).detail;
      if (m.receiverId === peer.id) add([m]);
    };
    saved.addEventListener("message", onSaved);
    return () => saved.removeEventListener("message", onSaved);
  }, [saved, peer.id, add]);

  // Read receipts: what the peer sent is read once it is on a visible page.
  useEffect(() => {
    const onVisibility = () => setVisible(document.visibilityState === "visible");
    onVisibility();
    document.addEventListener("visibilitychange", onVisibility);
    return () => document.removeEventListener("visibilitychange", onVisibility);
  }, []);
  useEffect(() => {
    if (!visible) return;
    const unread = messages.filter((m) => m.senderId === peer.id && m.readAt === null);
    if (unread.length === 0) return;
    const upTo = unread[unread.length - 1].seq;
    if (upTo <= readUpTo.current) return;
    readUpTo.current = upTo;
    api.markRead(peer.id, upTo).then(
      ({ ids, readAt }) => {
        const changed = new Set(ids);
        setMessages((list) => list.map((m) => (changed.has(m.id) ? { ...m, readAt } : m)));
      },
      (e: unknown) => {
        readUpTo.current = 0; // try again with the next change
        console.warn("[chat] could not mark messages read:", e);
      },
    );
  }, [messages, visible, peer.id]);

  const pending = queued.filter((q) => q.to === peer.id);
  useEffect(() => {
    if (list.current) list.current.scrollTop = list.current.scrollHeight;
  }, [messages.length, pending.length, peerTyping]);

  const submit = (e: FormEvent) => {
    e.preventDefault();
    const body = draft.trim();
    if (!body) return;
    typing.current?.stop();
    send(peer.id, body);
    setDraft("");
  };

  return (
    <section className="conversation" data-testid="conversation" data-peer={peer.id}>
      <header className="conversation-head">
        <h1>{peer.name}</h1>
      </header>
      <ol className="messages" ref={list} data-testid="messages" data-loaded={loaded ? "true" : "false"}>
        {messages.map((m) => {
          const mine = m.senderId === me.id;
          return (
            <li key={m.id} className={mine ? "mine" : "theirs"} data-testid="message" data-id={m.id} data-mine={mine}>
              <p className="body">{m.body}</p>
              <p className="meta">
                <time dateTime={new Date(m.createdAt).toISOString()}>{clock(m.createdAt)}</time>
                {mine && (
                  <span className={`receipt ${m.readAt ? "read" : "sent"}`} data-testid="receipt">
                    {m.readAt ? "✓✓ Read" : "✓ Sent"}
                  </span>
                )}
              </p>
            </li>
          );
        })}
        {pending.map((q) => (
          <li key={q.id} className={`mine pending ${q.state}`} data-testid="pending" data-id={q.id} data-state={q.state}>
            <p className="body">{q.body}</p>
            <p className="meta">
              {q.state === "sending" && "Sending…"}
              {q.state === "queued" && "Queued: will send when back online"}
              {q.state === "failed" && (
                <>
                  Not sent: {q.error}{" "}
                  <button type="button" onClick={() => discard(q.id)}>
                    Discard
                  </button>
                </>
              )}
            </p>
          </li>
        ))}
      </ol>
      <p className="typing" data-testid="typing" hidden={!peerTyping}>
        {peer.name.split(" ")[0]} is typing…
      </p>
      <form className="composer" onSubmit={submit}>
        <input
          data-testid="composer"
          value={draft}
          maxLength={MAX_BODY_CHARS}
          placeholder={`Message ${peer.name.split(" ")[0]}`}
          aria-label="Message"
          autoComplete="off"
          onChange={(e) => {
            setDraft(e.target.value);
            if (e.target.value.trim()) typing.current?.keystroke();
            else typing.current?.stop();
          }}
        />
        <button type="submit" data-testid="send" disabled={!draft.trim()}>
          Send
        </button>
      </form>
    </section>
  );
}

function clock(t: number): string {
  return new Date(t).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

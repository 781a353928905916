import type { Message } from "@/lib/types";

// Messages on their way to the API (requirement 9.3). A message is kept, in order and in
// localStorage, until the API has saved it: while the network is down it waits ("queued") and is
// retried when the browser is back online, when the real-time connection returns, and every few
// seconds. Its id is chosen here, so a retry whose first attempt did reach the server is stored
// once. A refusal (4xx) is final and shown to the user.

export interface QueuedMessage {
  id: string;
  to: string;
  body: string;
  createdAt: number;
  state: "sending" | "queued" | "failed";
  error?: string;
}

interface Deps {
  send: (m: QueuedMessage) => Promise<Message>;
  onSaved: (m: Message) => void;
  onChange: (items: QueuedMessage[]) => void;
  isRefusal: (e: unknown) => boolean;
}

export class Outbox {
  private items: QueuedMessage[] = [];
  private flushing = false;
  private again = false;

  constructor(private readonly owner: string, private readonly deps: Deps) {}

  private get key() {
    return `chat-outbox:${this.owner}`;
  }

  /** Picks up what an earlier page of this user left unsent. */
  load(): void {
    try {
      const stored: unknown = JSON.parse(localStorage.getItem(this.key) ?? "[]");
      if (Array.isArray(stored)) {
        const known = new Set(this.items.map((i) => i.id));
        for (const item of stored as QueuedMessage[]) {
          if (!known.has(item.id)) this.items.push({ ...item, state: item.state === "failed" ? "failed" : "queued" });
        }
      }
    } catch {
      // An unreadable entry is dropped; nothing else can be done with it.
    }
    this.changed();
    void this.flush();
  }

  add(m: Omit<QueuedMessage, "state">): void {
    this.items.push({ ...m, state: "sending" });
    this.changed();
    void this.flush();
  }

  remove(id: string): void {
    this.items = this.items.filter((i) => i.id !== id);
    this.changed();
  }

  /** On logout: nothing of this user stays in the browser. */
  forget(): void {
    this.items = [];
    localStorage.removeItem(this.key);
  }

  /** Sends what waits, oldest first; stops at the first network failure to keep the order. */
  async flush(): Promise<void> {
    if (this.flushing) {
      this.again = true;
      return;
    }
    this.flushing = true;
    try {
      do {
        this.again = false;
        for (const item of [...this.items]) {
          if (item.state === "failed") continue;
          this.update(item.id, { state: "sending" });
          try {
            const saved = await this.deps.send(item);
            this.remove(item.id);
            this.deps.onSaved(saved);
          } catch (e) {
            if (this.deps.isRefusal(e)) {
              this.update(item.id, { state: "failed", error: e instanceof Error ? e.message : String(e) });
              continue;
            }
            this.update(item.id, { state: "queued" });
            this.again = false;
            return;
          }
        }
      } while (this.again);
    } finally {
      this.flushing = false;
    }
  }

  private update(id: string, patch: Partial<QueuedMessage>): void {
    this.items = this.items.map((i) => (i.id === id ? { ...i, ...patch } : i));
    this.changed();
  }

  private changed(): void {
    try {
      localStorage.setItem(this.key, JSON.stringify(this.items));
    } catch {
      // Storage full or blocked: the queue still lives for this page.
    }
    this.deps.onChange([...this.items]);
  }
}

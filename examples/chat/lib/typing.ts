// The sending side of the typing indicator (requirement 5): `start` when typing begins (repeated
// every few seconds while it goes on, so a receiver that missed it catches up), `stop` after
// 3 s without a keystroke or when the message is sent, and never more than one event a second
// (an event that would come too soon waits, and only the latest wish is sent).

export const TYPING_IDLE_MS = 3000;
export const TYPING_MIN_INTERVAL_MS = 1000;
export const TYPING_REFRESH_MS = 2500;
/** A receiver hides the indicator after this long without news (a lost `stop`, a closed tab). */
export const TYPING_STALE_MS = TYPING_REFRESH_MS + TYPING_IDLE_MS + 1000;

type Kind = "start" | "stop";

export class TypingNotifier {
  private lastSentKind: Kind = "stop";
  private lastSentAt = Number.NEGATIVE_INFINITY;
  private lastStartAt = Number.NEGATIVE_INFINITY;
  private wanted: Kind | null = null;
  private idleTimer: ReturnType<typeof setTimeout> | null = null;
  private flushTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(private readonly send: (kind: Kind) => void, private readonly now: () => number = Date.now) {}

  /** The user typed something. */
  keystroke(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => this.stop(), TYPING_IDLE_MS);
    const current = this.wanted ?? this.lastSentKind;
    if (current === "stop" || this.now() - this.lastStartAt >= TYPING_REFRESH_MS) this.request("start");
  }

  /** Typing ended: idle for 3 s, the message was sent or the input emptied. */
  stop(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    if ((this.wanted ?? this.lastSentKind) === "start") this.request("stop");
  }

  /** Leaving the chat: a last `stop` if one is allowed now, and no more timers. */
  dispose(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.idleTimer = this.flushTimer = null;
    if (this.lastSentKind === "start" && this.now() - this.lastSentAt >= TYPING_MIN_INTERVAL_MS) this.emit("stop");
    this.wanted = null;
  }

  private request(kind: Kind): void {
    this.wanted = kind;
    this.flush();
  }

  private flush(): void {
    if (this.wanted === null || this.flushTimer) return;
    const wait = this.lastSentAt + TYPING_MIN_INTERVAL_MS - this.now();
    if (wait > 0) {
      this.flushTimer = setTimeout(() => {
        this.flushTimer = null;
        this.flush();
      }, wait);
      return;
    }
    const kind = this.wanted;
    this.wanted = null;
    if (kind === "stop" && this.lastSentKind === "stop") return;
    this.emit(kind);
  }

  private emit(kind: Kind): void {
    this.send(kind);
    this.lastSentKind = kind;
    this.lastSentAt = this.now();
    if (kind === "start") this.lastStartAt = this.lastSentAt;
  }
}

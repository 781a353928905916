// The JSON shapes the API routes return and the events carry (browser and server share them).

export interface User {
  id: string;
  name: string;
  /** Milliseconds since the epoch of the user's last request, or null if never seen. */
  lastActive: number | null;
}

export interface UserWithStatus extends User {
  /** From the presence channel via the server's REST API; null when that is unreachable. */
  online: boolean | null;
}

export interface Message {
  /** Chosen by the sending browser (a UUID), so a retried send is stored once. */
  id: string;
  /** Order of storage; the cursor for catching up (`after`). */
  seq: number;
  senderId: string;
  receiverId: string;
  body: string;
  createdAt: number;
  readAt: number | null;
}

export interface ReadReceipt {
  readerId: string;
  ids: string[];
  readAt: number;
}

export interface TypingEvent {
  userId: string;
}

export interface StatusChange {
  userId: string;
  online: boolean;
  lastActive: number | null;
}

export interface MessageNotification {
  messageId: string;
  senderId: string;
  senderName: string;
  preview: string;
}

/** The body of every error answer: a machine-readable kind and a sentence for people. */
export interface ApiError {
  error: string;
  message: string;
}

/** What the browser needs to reach the Pusher-compatible server; no secrets. */
export interface PublicPusherConfig {
  key: string;
  cluster: string;
  /** Set when the server is not Pusher's own (our server): host, port, TLS. */
  host: string | null;
  port: number | null;
  useTLS: boolean;
}

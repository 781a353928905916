//! A connection's outbound queue, and the WebSocket response body that drains it.
//!
//! Channels, the supervisor and the session push frames into the [`Outbox`] without waiting.
//! The other end is [`OutboxBody`], the body of the `101 Switching Protocols` response: the
//! HTTP dispatcher polls it whenever the socket can take more, and it encodes every queued
//! frame into one chunk. So a delivery costs a queue push and, only when the connection was
//! idle, one wake-up of the connection's own task; a burst leaves in one write. A broadcast
//! leaves that wake-up to its worker thread's hub ([`super::wakeup`]), so the threads trade
//! one hand-off per broadcast rather than one per subscriber.
//!
//! The queue is bounded twice: in frames and in bytes. Frames of a broadcast are shared
//! (`ByteString` clones), but a slow reader on a busy channel still keeps every frame it has not
//! read alive, so what counts is the bytes it pins. When either bound is reached the client is
//! too slow: the queue is dropped at once (its memory freed), the session is told, and the body
//! ends the connection with 4100, so that one slow reader never stalls a channel or holds memory.
//!
//! Each poll encodes at most [`CHUNK_BYTES`] (and at least one frame): a long queue leaves in
//! several writes rather than as one buffer the size of the whole backlog.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use actix::Recipient;
use actix_codec::Encoder;
use actix_http::ws::{CloseCode, CloseReason, Codec, Message};
use actix_web::body::{BodySize, MessageBody};
use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use tokio::sync::oneshot;

use super::wakeup::{Hub, Wakes};

/// RFC 6455: a control frame carries at most 125 bytes; a close frame's reason at most 123.
const MAX_CLOSE_REASON: usize = 123;

/// Most payload bytes encoded into one chunk: the dispatcher copies each chunk into its write
/// buffer, so this bounds that buffer too.
pub const CHUNK_BYTES: usize = 64 * 1024;

/// The connection's outbound queue overflowed: the client reads too slowly. Outbox → session.
#[derive(actix::Message)]
#[rtype(result = "()")]
pub struct SlowConsumer;

/// How much one connection may have queued before it counts as too slow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub frames: usize,
    pub bytes: usize,
}

/// What goes out on the socket.
#[derive(Debug)]
pub enum Outbound {
    Text(ByteString),
    Pong(Bytes),
    /// A close frame; nothing is sent after it.
    Close(u16, String),
}

struct State {
    queue: VecDeque<Outbound>,
    /// Payload bytes in `queue`.
    queued_bytes: usize,
    /// The body's waker, present while it waits for frames.
    waker: Option<Waker>,
    /// Live [`Outbox`] handles; the body ends when the last one goes.
    senders: usize,
    overflowed: bool,
    /// The connection has ended (its session stopped, or the body was dropped); pushes are
    /// refused, and the body ends once what was queued before has gone out.
    gone: bool,
    /// The app's statistics counter of bytes queued to its sockets, once the app is known.
    /// Counted at the push, under the lock already held: a broadcast's pushes all run on the
    /// app's own thread, so the counter's cache line stays there.
    sent_bytes: Option<Arc<AtomicU64>>,
    /// The hub of the worker thread that polls the body, once the connection is set up.
    hub: Option<Arc<Hub>>,
}

struct Shared {
    state: Mutex<State>,
    bounds: Bounds,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; a poisoned queue is still a valid queue.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A cloneable handle to one connection's queue.
pub struct Outbox {
    shared: Arc<Shared>,
    session: Option<Recipient<SlowConsumer>>,
}

impl Outbox {
    /// Creates the queue and the response body that drains it.
    ///
    /// `closed` is actix-ws's connection-closed signal. It is kept, never used, because
    /// dropping it (with the body, when the connection ends) is what tells actix-ws's message
    /// stream that the connection has ended.
    pub fn new(bounds: Bounds, closed: oneshot::Sender<()>) -> (Self, OutboxBody) {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                queued_bytes: 0,
                waker: None,
                senders: 1,
                overflowed: false,
                gone: false,
                sent_bytes: None,
                hub: None,
            }),
            bounds: Bounds {
                frames: bounds.frames.max(1),
                bytes: bounds.bytes.max(1),
            },
        });
        let body = OutboxBody {
            shared: shared.clone(),
            codec: Codec::new(),
            finished: false,
            _closed: closed,
        };
        let outbox = Self {
            shared,
            session: None,
        };
        (outbox, body)
    }

    /// Binds the session that is told when the queue overflows.
    pub fn bind(&mut self, session: Recipient<SlowConsumer>) {
        self.session = Some(session);
    }

    /// Counts the payload bytes of every frame queued from now on into `counter`.
    pub fn count_sent_bytes(&self, counter: Arc<AtomicU64>) {
        self.shared.lock().sent_bytes = Some(counter);
    }

    /// Queues a text frame without waiting. Returns false if the connection is gone or too slow.
    pub fn send(&self, frame: ByteString) -> bool {
        self.push(Outbound::Text(frame))
    }

    /// Wakes the connection through `hub` (its worker thread's) when a broadcast queues a frame
    /// for it: see [`super::wakeup`]. Without one, every push wakes it directly.
    pub fn wake_through(&self, hub: Arc<Hub>) {
        self.shared.lock().hub = Some(hub);
    }

    /// Ends the connection from its own thread: the session calls this when it stops.
    /// Pushes are refused from now on, and the body ends as soon as what is already queued (a
    /// close frame, say) has been written. Without it, a connection that ended with no close
    /// frame (the client shut or dropped its side) ended only when the last handle went, which
    /// is the channel's, dropped on the app's thread after the session's disconnect had gone
    /// round through the supervisor: the socket closed one round trip later, and that drop
    /// woke this connection's worker once more.
    pub fn end(&self) {
        let waker = {
            let mut state = self.shared.lock();
            state.gone = true;
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Queues any outbound item without waiting.
    pub fn push(&self, item: Outbound) -> bool {
        let mut state = self.shared.lock();
        let queued = self.enqueue(&mut state, item);
        drop(state);
        self.finish(queued)
    }

    /// Queues a text frame without waiting, as [`Outbox::send`] does, but leaves the wake-up of
    /// the connection's task in `wakes`, for the broadcast to hand over once per worker thread.
    pub fn send_gathered(&self, frame: ByteString, wakes: &mut Wakes) -> bool {
        let mut state = self.shared.lock();
        let queued = match (self.enqueue(&mut state, Outbound::Text(frame)), &state.hub) {
            (Queued::Yes(Some(waker)), Some(hub)) => {
                wakes.add(hub, waker);
                return true;
            }
            (queued, _) => queued,
        };
        drop(state);
        self.finish(queued)
    }

    /// Queues the item under the lock; the caller wakes whoever must be woken, after it.
    fn enqueue(&self, state: &mut State, item: Outbound) -> Queued {
        if state.gone || state.overflowed {
            return Queued::No;
        }
        let len = item_len(&item);
        let bounds = self.shared.bounds;
        // A frame larger than the whole byte budget still goes out on an empty queue.
        let over_bytes = !state.queue.is_empty() && state.queued_bytes + len > bounds.bytes;
        if state.queue.len() >= bounds.frames || over_bytes {
            state.overflowed = true;
            // The client will never see these; free them now rather than when it reads.
            state.queue = VecDeque::new();
            state.queued_bytes = 0;
            return Queued::Overflowed(state.waker.take());
        }
        state.queue.push_back(item);
        state.queued_bytes += len;
        if let Some(counter) = &state.sent_bytes {
            counter.fetch_add(len as u64, Ordering::Relaxed);
        }
        Queued::Yes(state.waker.take())
    }

    /// Wakes the body (outside the lock: it may run on another thread and take it at once) and
    /// tells the session of an overflow.
    fn finish(&self, queued: Queued) -> bool {
        match queued {
            Queued::No => false,
            Queued::Overflowed(waker) => {
                if let Some(waker) = waker {
                    waker.wake();
                }
                if let Some(session) = &self.session {
                    session.do_send(SlowConsumer);
                }
                false
            }
            Queued::Yes(waker) => {
                if let Some(waker) = waker {
                    waker.wake();
                }
                true
            }
        }
    }
}

/// What [`Outbox::enqueue`] did, and the body's waker if it was waiting.
enum Queued {
    /// Refused: the connection is gone or already too slow.
    No,
    /// This item overflowed the queue, which was dropped.
    Overflowed(Option<Waker>),
    Yes(Option<Waker>),
}

impl Clone for Outbox {
    fn clone(&self) -> Self {
        self.shared.lock().senders += 1;
        Self {
            shared: self.shared.clone(),
            session: self.session.clone(),
        }
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        let waker = {
            let mut state = self.shared.lock();
            state.senders -= 1;
            if state.senders > 0 {
                return;
            }
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// The WebSocket response body: encodes queued frames as the socket drains.
pub struct OutboxBody {
    shared: Arc<Shared>,
    codec: Codec,
    finished: bool,
    /// Dropped with the body: see [`Outbox::new`].
    _closed: oneshot::Sender<()>,
}

/// Encodes one item as a server frame; true if it was the last (a close frame).
fn encode(codec: &mut Codec, item: Outbound, buf: &mut BytesMut) -> bool {
    let (message, last) = match item {
        Outbound::Text(text) => (Message::Text(text), false),
        Outbound::Pong(payload) => (
            Message::Pong(payload.slice(..payload.len().min(125))),
            false,
        ),
        Outbound::Close(code, mut reason) => {
            if reason.len() > MAX_CLOSE_REASON {
                let mut end = MAX_CLOSE_REASON;
                while !reason.is_char_boundary(end) {
                    end -= 1;
                }
                reason.truncate(end);
            }
            let reason = CloseReason {
                code: CloseCode::from(code),
                description: (!reason.is_empty()).then_some(reason),
            };
            (Message::Close(Some(reason)), true)
        }
    };
    // Encoding a server frame into a growable buffer cannot fail.
    let _ = codec.encode(message, buf);
    last
}

impl MessageBody for OutboxBody {
    type Error = std::convert::Infallible;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let OutboxBody {
            shared: inner,
            codec,
            finished,
            ..
        } = self.get_mut();
        if *finished {
            return Poll::Ready(None);
        }
        let mut state = inner.lock();
        if state.overflowed {
            drop(state);
            *finished = true;
            let mut buf = BytesMut::new();
            let slow = shared::Closing::SlowClient;
            let close = Outbound::Close(slow.code().code(), slow.reason().into());
            encode(codec, close, &mut buf);
            return Poll::Ready(Some(Ok(buf.freeze())));
        }
        if state.queue.is_empty() {
            if state.senders == 0 || state.gone {
                *finished = true;
                return Poll::Ready(None);
            }
            if !state
                .waker
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
            {
                state.waker = Some(cx.waker().clone());
            }
            return Poll::Pending;
        }
        // Take at most a chunk's worth (at least one frame); the lock is held only for moves.
        // The usual case, a queue that fits one chunk, is taken whole: the connection is left
        // with no queue allocation between deliveries (an idle connection holds none).
        let (batch, size) = if state.queued_bytes < CHUNK_BYTES {
            (std::mem::take(&mut state.queue), state.queued_bytes)
        } else {
            let mut batch = VecDeque::new();
            let mut size = 0;
            while let Some(item) = state.queue.pop_front() {
                size += item_len(&item);
                batch.push_back(item);
                if size >= CHUNK_BYTES {
                    break;
                }
            }
            if state.queue.is_empty() {
                // A burst grew the queue; give the memory back once it has drained.
                state.queue = VecDeque::new();
            }
            (batch, size)
        };
        state.queued_bytes = state.queued_bytes.saturating_sub(size);
        drop(state);
        // Frame headers are at most 10 bytes (the payloads are unmasked).
        let mut buf = BytesMut::with_capacity(size + 10 * batch.len());
        for item in batch {
            if encode(codec, item, &mut buf) {
                *finished = true;
                break;
            }
        }
        Poll::Ready(Some(Ok(buf.freeze())))
    }
}

fn item_len(item: &Outbound) -> usize {
    match item {
        Outbound::Text(text) => text.len(),
        Outbound::Pong(payload) => payload.len(),
        Outbound::Close(_, reason) => reason.len() + 2,
    }
}

impl Drop for OutboxBody {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.gone = true;
        state.queue = VecDeque::new();
        state.queued_bytes = 0;
        state.waker = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;

    fn queue(frames: usize) -> (Outbox, OutboxBody) {
        bounded(frames, usize::MAX)
    }

    fn bounded(frames: usize, bytes: usize) -> (Outbox, OutboxBody) {
        Outbox::new(Bounds { frames, bytes }, oneshot::channel().0)
    }

    async fn next(body: &mut OutboxBody) -> Option<Bytes> {
        poll_fn(|cx| Pin::new(&mut *body).poll_next(cx))
            .await
            .map(Result::unwrap)
    }

    fn text_frame(text: &str) -> Vec<u8> {
        let mut frame = vec![0x81, text.len() as u8];
        frame.extend_from_slice(text.as_bytes());
        frame
    }

    #[actix_web::test]
    async fn queued_frames_leave_in_one_chunk() {
        let (outbox, mut body) = queue(8);
        assert!(outbox.send("a".into()));
        assert!(outbox.send("bc".into()));
        let chunk = next(&mut body).await.unwrap();
        assert_eq!(chunk, [text_frame("a"), text_frame("bc")].concat());
    }

    #[actix_web::test]
    async fn body_ends_after_close_and_when_every_sender_is_gone() {
        let (outbox, mut body) = queue(8);
        outbox.push(Outbound::Close(4009, "bye".into()));
        assert!(outbox.send("after".into()));
        let chunk = next(&mut body).await.unwrap();
        assert_eq!(&chunk[..], &[0x88, 5, 0x0f, 0xa9, b'b', b'y', b'e']);
        assert!(next(&mut body).await.is_none());

        let (outbox, mut body) = queue(8);
        let other = outbox.clone();
        drop(outbox);
        other.send("x".into());
        drop(other);
        assert_eq!(next(&mut body).await.unwrap(), text_frame("x"));
        assert!(next(&mut body).await.is_none());
    }

    #[actix_web::test]
    async fn overflow_drops_the_queue_and_closes_with_4100() {
        let (outbox, mut body) = queue(2);
        assert!(outbox.send("1".into()));
        assert!(outbox.send("2".into()));
        assert!(!outbox.send("3".into()), "the third frame overflows");
        assert!(
            !outbox.send("4".into()),
            "nothing is queued after an overflow"
        );
        let chunk = next(&mut body).await.unwrap();
        assert_eq!(&chunk[..4], &[0x88, 2 + 37, 0x10, 0x04]);
        assert!(next(&mut body).await.is_none());
    }

    #[actix_web::test]
    async fn the_byte_bound_overflows_however_few_frames_are_queued() {
        let (outbox, mut body) = bounded(1000, 10);
        assert!(outbox.send("12345".into()));
        assert!(outbox.send("67890".into()));
        assert!(!outbox.send("x".into()), "11 bytes is over the bound of 10");
        let chunk = next(&mut body).await.unwrap();
        assert_eq!(&chunk[..4], &[0x88, 2 + 37, 0x10, 0x04], "closed with 4100");
        assert!(next(&mut body).await.is_none());
        assert_eq!(outbox.shared.lock().queued_bytes, 0, "the queue was freed");
    }

    #[actix_web::test]
    async fn a_frame_larger_than_the_byte_bound_still_goes_out_alone() {
        let (outbox, mut body) = bounded(8, 4);
        assert!(outbox.send("too big".into()));
        assert_eq!(next(&mut body).await.unwrap(), text_frame("too big"));
    }

    #[actix_web::test]
    async fn each_poll_encodes_at_most_a_chunk() {
        let (outbox, mut body) = queue(2000);
        let frame = "x".repeat(100);
        let frames = 2 * CHUNK_BYTES / 100 + 5;
        for _ in 0..frames {
            assert!(outbox.send(frame.clone().into()));
        }
        let mut total = 0;
        let mut chunks = 0;
        while total < frames * (frame.len() + 2) {
            let chunk = next(&mut body).await.unwrap();
            // A chunk's payload passes the bound by less than one frame; headers are 2 bytes.
            let most = (CHUNK_BYTES + frame.len()) * (frame.len() + 2) / frame.len();
            assert!(chunk.len() <= most, "{}", chunk.len());
            total += chunk.len();
            chunks += 1;
        }
        assert_eq!(chunks, 3);
        assert_eq!(outbox.shared.lock().queued_bytes, 0);
    }

    /// The session's stop ends the body while the app's thread still holds its handles: what
    /// was queued before (a close frame) goes out, nothing pushed after it does, and a body
    /// already waiting is woken to end.
    #[actix_web::test]
    async fn a_stopped_session_ends_the_body_while_other_handles_live() {
        let (outbox, mut body) = queue(8);
        let channel = outbox.clone();
        outbox.push(Outbound::Close(4009, "bye".into()));
        outbox.end();
        assert!(!channel.send("late".into()));
        assert_eq!(next(&mut body).await.unwrap()[0], 0x88);
        assert!(next(&mut body).await.is_none());

        let (outbox, mut body) = queue(8);
        let channel = outbox.clone();
        let reader = actix_web::rt::spawn(async move { next(&mut body).await });
        actix_web::rt::task::yield_now().await;
        outbox.end();
        let ended = actix_web::rt::time::timeout(std::time::Duration::from_secs(5), reader)
            .await
            .expect("the waiting body was woken");
        assert!(ended.unwrap().is_none());
        drop(channel);
    }

    #[actix_web::test]
    async fn pushes_fail_once_the_connection_is_gone() {
        let (outbox, body) = queue(8);
        drop(body);
        assert!(!outbox.send("late".into()));
    }

    #[actix_web::test]
    async fn a_broadcast_from_another_thread_wakes_the_body_through_its_hub() {
        let (outbox, mut body) = queue(8);
        outbox.wake_through(Hub::local());
        let reader = actix_web::rt::spawn(async move { next(&mut body).await });
        actix_web::rt::task::yield_now().await;
        // A clone, so that no sender's drop wakes the body: only the hub may.
        let sender = outbox.clone();
        std::thread::spawn(move || {
            super::super::wakeup::gather(|wakes| {
                assert!(sender.send_gathered("a".into(), wakes));
                assert!(sender.send_gathered("b".into(), wakes));
            });
        })
        .join()
        .unwrap();
        let chunk = actix_web::rt::time::timeout(std::time::Duration::from_secs(5), reader)
            .await
            .expect("the hub woke the body")
            .unwrap()
            .unwrap();
        assert_eq!(chunk, [text_frame("a"), text_frame("b")].concat());
    }

    #[actix_web::test]
    async fn a_waiting_body_is_woken_by_a_push() {
        let (outbox, mut body) = queue(8);
        let reader = actix_web::rt::spawn(async move { next(&mut body).await });
        actix_web::rt::task::yield_now().await;
        outbox.send("wake".into());
        assert_eq!(reader.await.unwrap().unwrap(), text_frame("wake"));
    }
}

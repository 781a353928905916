//! A connection's outbound queue, and the WebSocket response body that drains it.
//!
//! Channels, the supervisor and the session push frames into the [`Outbox`] without waiting.
//! The other end is [`OutboxBody`], the body of the `101 Switching Protocols` response: the
//! HTTP dispatcher polls it whenever the socket can take more, and it encodes every queued
//! frame into one chunk. So a delivery costs a queue push and, only when the connection was
//! idle, one wake-up of the connection's own task; a burst leaves in one write.
//!
//! When the queue is full the client is too slow: the queue is dropped, the session is told,
//! and the body ends the connection with 4100, so that one slow reader never stalls a channel.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use actix::Addr;
use actix_codec::Encoder;
use actix_http::ws::{CloseCode, CloseReason, Codec, Message};
use actix_web::body::{BodySize, BoxBody, MessageBody};
use bytes::{Bytes, BytesMut};
use bytestring::ByteString;

use super::messages::SlowConsumer;
use super::session::Session;

/// RFC 6455: a control frame carries at most 125 bytes; a close frame's reason at most 123.
const MAX_CLOSE_REASON: usize = 123;

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
    /// The body's waker, present while it waits for frames.
    waker: Option<Waker>,
    /// Live [`Outbox`] handles; the body ends when the last one goes.
    senders: usize,
    overflowed: bool,
    /// The connection has ended (the body was dropped); pushes are refused.
    gone: bool,
}

struct Shared {
    state: Mutex<State>,
    capacity: usize,
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
    session: Option<Addr<Session>>,
}

impl Outbox {
    /// Creates the queue and the response body that drains it.
    ///
    /// `inbound` is the body actix-ws built for its own writer, which this module replaces. It is
    /// kept, never polled, because dropping it is what tells actix-ws's message stream that the
    /// connection has ended.
    pub fn new(capacity: usize, inbound: BoxBody) -> (Self, OutboxBody) {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                waker: None,
                senders: 1,
                overflowed: false,
                gone: false,
            }),
            capacity: capacity.max(1),
        });
        let body = OutboxBody {
            shared: shared.clone(),
            codec: Codec::new(),
            finished: false,
            _inbound: inbound,
        };
        let outbox = Self {
            shared,
            session: None,
        };
        (outbox, body)
    }

    /// Binds the session that is told when the queue overflows.
    pub fn bind(&mut self, session: Addr<Session>) {
        self.session = Some(session);
    }

    /// Queues a text frame without waiting. Returns false if the connection is gone or too slow.
    pub fn send(&self, frame: ByteString) -> bool {
        self.push(Outbound::Text(frame))
    }

    /// Queues any outbound item without waiting.
    pub fn push(&self, item: Outbound) -> bool {
        let waker = {
            let mut state = self.shared.lock();
            if state.gone || state.overflowed {
                return false;
            }
            if state.queue.len() >= self.shared.capacity {
                state.overflowed = true;
                // The client will never see these; free them now rather than when it reads.
                state.queue = VecDeque::new();
                let waker = state.waker.take();
                drop(state);
                if let Some(waker) = waker {
                    waker.wake();
                }
                if let Some(session) = &self.session {
                    session.do_send(SlowConsumer);
                }
                return false;
            }
            state.queue.push_back(item);
            state.waker.take()
        };
        // Woken outside the lock: the body may run on another thread and take it at once.
        if let Some(waker) = waker {
            waker.wake();
        }
        true
    }
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
    _inbound: BoxBody,
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
            let close = Outbound::Close(
                shared::CloseCode::OverCapacity.code(),
                "Client too slow: outbound buffer full".into(),
            );
            encode(codec, close, &mut buf);
            return Poll::Ready(Some(Ok(buf.freeze())));
        }
        if state.queue.is_empty() {
            if state.senders == 0 {
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
        let mut queue = std::mem::take(&mut state.queue);
        drop(state);
        // Frame headers are at most 10 bytes (the payloads are unmasked).
        let size: usize = queue.iter().map(|item| item_len(item) + 10).sum();
        let mut buf = BytesMut::with_capacity(size);
        while let Some(item) = queue.pop_front() {
            if encode(codec, item, &mut buf) {
                *finished = true;
                break;
            }
        }
        // Hand the emptied queue back so that its allocation is reused, unless a burst made it big.
        if !*finished && queue.capacity() <= 64 {
            queue.clear();
            let mut state = inner.lock();
            if state.queue.is_empty() {
                std::mem::swap(&mut state.queue, &mut queue);
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
        state.waker = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;

    fn queue(capacity: usize) -> (Outbox, OutboxBody) {
        Outbox::new(capacity, BoxBody::new(()))
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
    async fn pushes_fail_once_the_connection_is_gone() {
        let (outbox, body) = queue(8);
        drop(body);
        assert!(!outbox.send("late".into()));
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

//! A connection's bounded outbound queue, and the task that drains it into the WebSocket.
//!
//! Channels write to the queue without waiting. When it is full the client is too slow: the
//! connection is closed with 4100 so that one slow reader never stalls a channel.

use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use bytestring::ByteString;
use tokio::sync::{mpsc, Notify};

use super::messages::SlowConsumer;
use super::session::Session;

/// What the writer task sends.
#[derive(Debug)]
pub enum Outbound {
    Text(ByteString),
    Pong(bytes::Bytes),
    /// A close frame; the writer stops after it.
    Close(u16, String),
}

/// A cloneable handle to one connection's queue.
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Outbound>,
    overflow: Arc<Notify>,
    session: Option<Addr<Session>>,
}

impl Outbox {
    /// Creates the queue and spawns its writer on the current (worker) thread.
    pub fn spawn(ws: actix_ws::Session, capacity: usize) -> Self {
        let (tx, rx) = mpsc::channel(capacity);
        let overflow = Arc::new(Notify::new());
        actix_web::rt::spawn(write_loop(ws, rx, overflow.clone()));
        Self {
            tx,
            overflow,
            session: None,
        }
    }

    /// Binds the session that is told when the queue overflows.
    pub fn bind(&mut self, session: Addr<Session>) {
        self.session = Some(session);
    }

    /// Queues a frame without waiting. Returns false if the connection is gone or too slow.
    pub fn send(&self, frame: ByteString) -> bool {
        self.push(Outbound::Text(frame))
    }

    /// Queues any outbound item without waiting.
    pub fn push(&self, item: Outbound) -> bool {
        match self.tx.try_send(item) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.overflow.notify_one();
                if let Some(session) = &self.session {
                    session.do_send(SlowConsumer);
                }
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

async fn write_loop(
    mut ws: actix_ws::Session,
    mut rx: mpsc::Receiver<Outbound>,
    overflow: Arc<Notify>,
) {
    loop {
        let item = tokio::select! {
            biased;
            () = overflow.notified() => break,
            item = rx.recv() => item,
        };
        let Some(item) = item else { return };
        let sent = tokio::select! {
            biased;
            () = overflow.notified() => break,
            sent = send(&mut ws, item) => sent,
        };
        if !sent {
            return;
        }
    }
    // Overflow: the client is not reading. Try to say why, but never wait on it for long.
    let reason = actix_ws::CloseReason {
        code: actix_ws::CloseCode::Other(shared::CloseCode::OverCapacity.code()),
        description: Some("Client too slow: outbound buffer full".into()),
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(Some(reason))).await;
}

/// Sends one item; false when the writer should stop.
async fn send(ws: &mut actix_ws::Session, item: Outbound) -> bool {
    match item {
        Outbound::Text(text) => ws.text(text).await.is_ok(),
        Outbound::Pong(payload) => ws.pong(&payload).await.is_ok(),
        Outbound::Close(code, reason) => {
            let reason = actix_ws::CloseReason {
                code: actix_ws::CloseCode::Other(code),
                description: Some(reason),
            };
            let _ = ws.clone().close(Some(reason)).await;
            false
        }
    }
}

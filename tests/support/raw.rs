//! A raw WebSocket client over plain TCP, for what a well-behaved client library will not send:
//! bad close codes, invalid UTF-8, unmasked or oversized fragmented frames, and for watching the
//! TCP connection itself (who closes it, and when).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::WAIT;

pub const TEXT: u8 = 0x1;
pub const CONTINUATION: u8 = 0x0;
pub const CLOSE: u8 = 0x8;

/// One frame from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl RawFrame {
    /// The code of a close frame.
    pub fn close_code(&self) -> Option<u16> {
        (self.opcode == CLOSE && self.payload.len() >= 2)
            .then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

pub struct RawSocket {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl RawSocket {
    /// Opens `/app/{key}` and completes the handshake.
    pub async fn connect(addr: SocketAddr, key: &str) -> Self {
        let mut stream = TcpStream::connect(addr).await.expect("TCP connects");
        let request = format!(
            "GET /app/{key}?protocol=7 HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.expect("send");
        let mut socket = Self {
            stream,
            buf: Vec::new(),
        };
        let head_end = loop {
            if let Some(end) = socket.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            assert!(socket.fill().await, "handshake answered");
        };
        let head = String::from_utf8_lossy(&socket.buf[..head_end]).to_string();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        socket.buf.drain(..head_end);
        socket
    }

    /// Reads more bytes; false at end of stream.
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(WAIT, self.stream.read(&mut chunk))
            .await
            .expect("the server answers in time")
            .unwrap_or(0);
        self.buf.extend_from_slice(&chunk[..n]);
        n > 0
    }

    /// Sends one frame; `masked` false breaks the rule that clients mask.
    pub async fn send_frame(&mut self, fin: bool, opcode: u8, payload: &[u8], masked: bool) {
        let mut frame = vec![if fin { 0x80 } else { 0 } | opcode];
        let mask_bit = if masked { 0x80 } else { 0 };
        // RFC 6455 §5.2: 7-bit lengths up to 125, then 126 + u16, then 127 + u64.
        let len = payload.len();
        if len < 126 {
            frame.push(mask_bit | u8::try_from(len).unwrap());
        } else if let Ok(len) = u16::try_from(len) {
            frame.push(mask_bit | 0x7e);
            frame.extend_from_slice(&len.to_be_bytes());
        } else {
            frame.push(mask_bit | 0x7f);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
        if masked {
            let mask = [0x37, 0xfa, 0x21, 0x3d];
            frame.extend_from_slice(&mask);
            frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        } else {
            frame.extend_from_slice(payload);
        }
        // The server may already have closed; the test reads what it said.
        let _ = self.stream.write_all(&frame).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.send_frame(true, TEXT, text.as_bytes(), true).await;
    }

    /// A close frame with this code.
    pub async fn send_close(&mut self, code: u16) {
        self.send_frame(true, CLOSE, &code.to_be_bytes(), true)
            .await;
    }

    /// The next frame, or `None` when the server closed the TCP connection.
    pub async fn next_frame(&mut self) -> Option<RawFrame> {
        loop {
            if let Some((frame, used)) = parse(&self.buf) {
                self.buf.drain(..used);
                return Some(frame);
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    /// Skips frames up to the close frame and returns its code.
    pub async fn close_code(&mut self) -> Option<u16> {
        loop {
            let frame = self.next_frame().await?;
            if frame.opcode == CLOSE {
                return frame.close_code();
            }
        }
    }

    /// Whether the server closes the TCP connection (end of stream) within `wait`, reading and
    /// dropping anything it still sends.
    pub async fn server_closes_within(&mut self, wait: Duration) -> bool {
        let mut chunk = [0u8; 4096];
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Err(_) => return false,
                Ok(Ok(0) | Err(_)) => return true,
                Ok(Ok(_)) => {}
            }
        }
    }
}

/// One unmasked server frame from the front of `buf`, with the bytes it used.
fn parse(buf: &[u8]) -> Option<(RawFrame, usize)> {
    if buf.len() < 2 {
        return None;
    }
    let opcode = buf[0] & 0x0f;
    let (len, mut at) = match buf[1] & 0x7f {
        126 => (
            usize::from(u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?])),
            4,
        ),
        127 => {
            let bytes: [u8; 8] = buf.get(2..10)?.try_into().ok()?;
            (usize::try_from(u64::from_be_bytes(bytes)).ok()?, 10)
        }
        n => (usize::from(n), 2),
    };
    let payload = buf.get(at..at + len)?.to_vec();
    at += len;
    Some((RawFrame { opcode, payload }, at))
}

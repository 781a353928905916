//! Floors: what the same work costs without a Pusher server, measured in the same sitting as
//! the servers, so that a server's figure can be read against the machine's own scale. They are
//! minimal designs, not bounds: a server can do a little better than one (ours spends less per
//! delivery than `floor`'s blocking writer), but a server far above one pays for its own
//! design, not for the kernel.
//!
//! - `floor`: the kernel's cost of one delivery. This process opens loopback connections to
//!   itself and writer threads write each one the frame a server sends for an event.
//! - `http-floor`: one REST request to a bare actix-web server.
//! - `ws-floor connections ...` and `ws-floor churn ...`: the `connections` and `churn`
//!   scenarios, unchanged, against a bare WebSocket server. It does only what the protocol
//!   makes every server do for a connection: accept it, read the upgrade request, answer `101`
//!   with `pusher:connection_established` in the same write, answer each `pusher:subscribe`
//!   with `pusher_internal:subscription_succeeded`, ping a connection that has been idle for
//!   the activity timeout, and close when the client does. It keeps no channels, checks no
//!   key or origin (any request with a `Sec-WebSocket-Key` is upgraded), and parses frames by
//!   hand. It runs on two threads, one `current_thread` tokio runtime each, with one
//!   `SO_REUSEPORT` listener per thread (like a server's two workers), both listening before
//!   the child is seen to accept.
//!
//! The bare servers run in a child process, a second copy of this tool, so that their CPU time
//! is read from `/proc` exactly as a server's is. The child exits when this process closes its
//! stdin, however this process ends.

use std::cell::Cell;
use std::net::Ipv4Addr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use actix_codec::Encoder;
use awc::ws::{Codec, Message};
use awc::BoxedSocket;
use reverb_pusher_bench::{cpu_micros, thread_cpu_micros};
use serde_json::{json, Value};

use crate::{
    bench_data, churn, connections, delta, hold, http, percentiles_json, print_percentiles,
    FloorScenario, Held, Server, Socket, Target, DRAIN, STEP_TIMEOUT,
};

/// What one writer thread of the `floor` scenario did.
struct Written {
    writes: u64,
    errors: u64,
    cpu_us: Option<u64>,
    /// Kept open until the report is printed: closing them would count as dropped connections.
    _streams: Vec<std::net::TcpStream>,
}

/// Writes one frame to each stream per round until `stop`; `gap` between rounds (None: no pause).
fn write_rounds(
    streams: Vec<std::net::TcpStream>,
    payload: usize,
    gap: Option<Duration>,
    stop: Instant,
) -> Written {
    use std::io::Write;
    let mut codec = Codec::new();
    let cpu_before = thread_cpu_micros();
    let (mut writes, mut errors) = (0u64, 0u64);
    let mut next = Instant::now();
    let mut alive = vec![true; streams.len()];
    while Instant::now() < stop {
        if let Some(gap) = gap {
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
            next += gap;
        }
        // Exactly the bytes a Pusher server sends for a REST-triggered event.
        let event = json!({"event": "bench", "channel": "floor", "data": bench_data(payload)});
        let mut frame = bytes::BytesMut::new();
        if codec
            .encode(Message::Text(event.to_string().into()), &mut frame)
            .is_err()
        {
            errors += 1;
            continue;
        }
        for (stream, alive) in streams.iter().zip(alive.iter_mut()) {
            if !*alive {
                continue;
            }
            if (&*stream).write_all(&frame).is_ok() {
                writes += 1;
            } else {
                *alive = false;
                errors += 1;
            }
        }
    }
    let cpu_after = thread_cpu_micros();
    Written {
        writes,
        errors,
        cpu_us: cpu_after.zip(cpu_before).map(|(a, b)| a.saturating_sub(b)),
        _streams: streams,
    }
}

/// Accepts `n` connections, or as many as arrive before `deadline`.
fn accept_many(
    listener: &std::net::TcpListener,
    n: usize,
    deadline: Instant,
) -> std::io::Result<Vec<std::net::TcpStream>> {
    listener.set_nonblocking(true)?;
    let mut streams = Vec::with_capacity(n);
    while streams.len() < n && Instant::now() < deadline {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false)?;
                streams.push(stream);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(streams)
}

pub(crate) async fn floor(
    target: &Target,
    connections: u32,
    writers: u32,
    rate: u32,
    duration: u64,
    payload: usize,
    connect_rate: u32,
) -> Value {
    // Both ends of every connection live in this process.
    if let Ok((limit, _)) = rlimit::Resource::NOFILE.get() {
        let most = limit.saturating_sub(64) / 2;
        if u64::from(connections) > most {
            return json!({"scenario": "floor", "error": format!(
                "both ends of each connection are in this process: at most {most} connections \
                 with an open-file limit of {limit}"
            )});
        }
    }
    let listener = match std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)) {
        Ok(listener) => listener,
        Err(e) => return json!({"scenario": "floor", "error": e.to_string()}),
    };
    let Ok(address) = listener.local_addr() else {
        return json!({"scenario": "floor", "error": "no local address"});
    };
    let n = connections as usize;
    let connect_secs = f64::from(connections) / f64::from(connect_rate.max(1));
    let accept_deadline = Instant::now() + Duration::from_secs_f64(connect_secs) + STEP_TIMEOUT;
    let acceptor = std::thread::spawn(move || accept_many(&listener, n, accept_deadline));

    let held = Rc::new(Held::default());
    let opened = Rc::new(Cell::new(0u64));
    let failed = Rc::new(Cell::new(0u64));
    let sources = target.source_addresses.max(1);
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(
        1.0 / f64::from(connect_rate.max(1)),
    ));
    for i in 0..connections {
        ticker.tick().await;
        let (held, opened, failed) = (held.clone(), opened.clone(), failed.clone());
        let source = Ipv4Addr::new(127, 0, 0, (i % u32::from(sources)) as u8 + 1);
        actix_rt::spawn(async move {
            let stream = async {
                let socket = tokio::net::TcpSocket::new_v4()?;
                socket.bind((source, 0).into())?;
                socket.connect(address).await
            }
            .await;
            match stream {
                Ok(stream) => {
                    opened.set(opened.get() + 1);
                    let io: BoxedSocket = Box::new(stream);
                    let socket = Socket::new(io, Codec::new().client_mode());
                    hold(socket, held, Instant::now() + Duration::from_secs(3600)).await;
                }
                Err(e) => {
                    if failed.get() < 3 {
                        eprintln!("connection {i} failed: {e}");
                    }
                    failed.set(failed.get() + 1);
                }
            }
        });
    }
    while !acceptor.is_finished() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let streams = match acceptor.join() {
        Ok(Ok(streams)) => streams,
        Ok(Err(e)) => return json!({"scenario": "floor", "error": e.to_string()}),
        Err(_) => return json!({"scenario": "floor", "error": "the accepting thread failed"}),
    };
    let accepted = streams.len() as u64;
    println!(
        "{accepted} loopback connections ({} failed); {writers} writer threads for {duration}s",
        failed.get()
    );

    let writers = writers.clamp(1, connections.max(1)) as usize;
    let mut shares: Vec<Vec<std::net::TcpStream>> = (0..writers).map(|_| Vec::new()).collect();
    for (i, stream) in streams.into_iter().enumerate() {
        shares[i % writers].push(stream);
    }
    let gap = (rate > 0).then(|| Duration::from_secs_f64(1.0 / f64::from(rate)));
    let process_before = cpu_micros(std::process::id());
    let started = Instant::now();
    let stop = started + Duration::from_secs(duration);
    let threads: Vec<_> = shares
        .into_iter()
        .map(|share| std::thread::spawn(move || write_rounds(share, payload, gap, stop)))
        .collect();
    while !threads.iter().all(std::thread::JoinHandle::is_finished) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let written: Vec<Written> = threads.into_iter().filter_map(|t| t.join().ok()).collect();
    let writes: u64 = written.iter().map(|w| w.writes).sum();
    let errors: u64 = written.iter().map(|w| w.errors).sum();
    let drain_until = Instant::now() + DRAIN;
    while held.delivered.get() < writes && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = duration as f64;
    let process_cpu = delta(cpu_micros(std::process::id()), process_before);
    let writer_cpu: Option<u64> = written.iter().map(|w| w.cpu_us).sum();
    let per_write = writer_cpu.map(|c| {
        if writes > 0 {
            c as f64 / writes as f64
        } else {
            0.0
        }
    });
    let delivered = held.delivered.get();
    let p = held.latencies.borrow().percentiles();
    println!(
        "{writes} writes ({errors} errors), delivered {delivered} ({:.0} deliveries/s), dropped {}",
        delivered as f64 / secs,
        held.dropped.get()
    );
    print_percentiles("delivery latency", &p);
    if let Some(c) = per_write {
        println!("writer CPU: {c:.2} us per write (the floor of one delivery)");
    }
    let result = json!({
        "scenario": "floor", "connections": connections, "accepted": accepted,
        "failed": failed.get(), "writers": writers, "rate": rate, "payload_bytes": payload,
        "duration_secs": duration, "writes": writes, "write_errors": errors,
        "delivered": delivered, "dropped": held.dropped.get(),
        "deliveries_per_sec": delivered as f64 / secs, "latency": percentiles_json(&p),
        "writer_cpu_us": writer_cpu, "writer_cpu_us_per_write": per_write,
        "process_cpu_us": process_cpu,
    });
    drop(written);
    result
}

/// Starts a second copy of this tool as a bare server (`args` after the subcommand's name and
/// `--port`) on a free loopback port, and waits until it accepts connections.
async fn start_bare_server(
    subcommand: &str,
    args: &[String],
) -> Result<(u16, std::process::Child), String> {
    let port = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let mut child = std::process::Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
        .arg(subcommand)
        .args(["--port", &port.to_string()])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + STEP_TIMEOUT;
    while std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err("the bare server did not start".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok((port, child))
}

/// A bare server's process exits when its parent closes the stdin it holds open.
fn exit_with_parent() {
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(0);
    });
}

/// `target` pointed at a bare server on `port`, with placeholder credentials where none are
/// given (the bare servers check none).
fn bare_target(target: &Target, port: u16) -> Target {
    let mut bare = target.clone();
    bare.url = format!("http://127.0.0.1:{port}");
    for (field, placeholder) in [
        (&mut bare.app_id, "floor"),
        (&mut bare.key, "floor"),
        (&mut bare.secret, "floor"),
    ] {
        if field.is_empty() {
            *field = placeholder.into();
        }
    }
    bare
}

/// The bare server's one route. The body is read in full (the extractor buffers it), as a real
/// trigger's would be.
async fn floor_event(_body: actix_web::web::Bytes) -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok()
        .content_type("application/json")
        .body("{}")
}

/// The bare HTTP server of `http-floor`: what actix-web and the kernel cost per request.
pub(crate) async fn floor_server(port: u16) -> Value {
    exit_with_parent();
    let server = actix_web::HttpServer::new(|| {
        actix_web::App::new().route(
            "/apps/{app_id}/events",
            actix_web::web::post().to(floor_event),
        )
    })
    .workers(2)
    .bind((Ipv4Addr::LOCALHOST, port));
    match server {
        Ok(server) => match server.run().await {
            Ok(()) => json!({"scenario": "floor-server", "port": port}),
            Err(e) => json!({"scenario": "floor-server", "error": e.to_string()}),
        },
        Err(e) => json!({"scenario": "floor-server", "error": e.to_string()}),
    }
}

pub(crate) async fn http_floor(target: &Target, concurrency: u32, duration: u64) -> Value {
    let (port, mut child) = match start_bare_server("floor-server", &[]).await {
        Ok(started) => started,
        Err(e) => return json!({"scenario": "http-floor", "error": e}),
    };
    let server = Server {
        pids: vec![child.id()],
    };
    let bare = bare_target(target, port);
    let mut result = http(&bare, &server, concurrency, duration, false).await;
    let _ = child.kill();
    let _ = child.wait();
    result["scenario"] = "http-floor".into();
    result
}

/// `ws-floor`: runs `scenario` (`connections` or `churn`) against the bare WebSocket server.
/// The result is the scenario's own JSON with `"floor": "ws-floor"` added.
pub(crate) async fn ws_floor(
    target: &Target,
    scenario: FloorScenario,
    activity_timeout: u64,
) -> Value {
    let args = [
        "--activity-timeout".to_owned(),
        activity_timeout.to_string(),
    ];
    let (port, mut child) = match start_bare_server("ws-floor-server", &args).await {
        Ok(started) => started,
        Err(e) => return json!({"scenario": "ws-floor", "error": e}),
    };
    let server = Server {
        pids: vec![child.id()],
    };
    let bare = bare_target(target, port);
    let mut result = match scenario {
        FloorScenario::Connections(args) => connections(&bare, &server, args).await,
        FloorScenario::Churn(args) => churn(&bare, &server, args).await,
    };
    let _ = child.kill();
    let _ = child.wait();
    result["floor"] = "ws-floor".into();
    result
}

/// The bare WebSocket server of `ws-floor`: two threads, each a `current_thread` runtime with
/// its own `SO_REUSEPORT` listener on `port`. Runs until the parent closes stdin.
pub(crate) async fn ws_floor_server(port: u16, activity_timeout: u64) -> Value {
    exit_with_parent();
    let activity = Duration::from_secs(activity_timeout.max(1));
    for worker in 0..2u8 {
        // Both listen before this returns, so that the parent's first connection finds both.
        let listening = bare_listener(port).and_then(|(runtime, listener)| {
            std::thread::Builder::new()
                .name(format!("ws-floor-{worker}"))
                .spawn(move || bare_worker(worker, &runtime, listener, activity))
        });
        if let Err(e) = listening {
            return json!({"scenario": "ws-floor-server", "error": e.to_string()});
        }
    }
    std::future::pending::<Value>().await
}

/// A `current_thread` runtime and a `SO_REUSEPORT` listener on `port` registered with it.
fn bare_listener(port: u16) -> std::io::Result<(tokio::runtime::Runtime, tokio::net::TcpListener)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let listener = {
        let _entered = runtime.enter();
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.set_reuseport(true)?;
        socket.bind((Ipv4Addr::LOCALHOST, port).into())?;
        socket.listen(1024)?
    };
    Ok((runtime, listener))
}

/// One thread of the bare WebSocket server: accepts on its own listener until the process
/// ends.
fn bare_worker(
    worker: u8,
    runtime: &tokio::runtime::Runtime,
    listener: tokio::net::TcpListener,
    activity: Duration,
) {
    let local = tokio::task::LocalSet::new();
    local.block_on(runtime, async move {
        let mut next_id = 0u64;
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    next_id += 1;
                    let socket_id = format!("{worker}.{next_id}");
                    tokio::task::spawn_local(bare_connection(stream, socket_id, activity));
                }
                // Out of file descriptors, say: the client sees refusals and counts them.
                Err(e) => {
                    eprintln!("ws-floor-server: worker {worker}: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    });
}

/// Reads from `stream` into `buffer` (growing it by what arrived); `Ok(false)` at end of
/// stream. A read that waits longer than `idle` returns `Err(TimedOut)`.
async fn read_more(
    stream: &tokio::net::TcpStream,
    buffer: &mut Vec<u8>,
    idle: Duration,
) -> std::io::Result<bool> {
    let mut chunk = [0u8; 1024];
    loop {
        match stream.try_read(&mut chunk) {
            Ok(0) => return Ok(false),
            Ok(n) => {
                buffer.extend_from_slice(&chunk[..n]);
                return Ok(true);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                tokio::time::timeout(idle, stream.readable())
                    .await
                    .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
            }
            Err(e) => return Err(e),
        }
    }
}

async fn write_all(stream: &tokio::net::TcpStream, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        match stream.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => stream.writable().await?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Most bytes of unread client frames a bare connection holds before it gives up.
const MAX_BUFFERED: usize = 64 * 1024;

/// One connection of the bare WebSocket server, from the upgrade request to the close.
async fn bare_connection(stream: tokio::net::TcpStream, socket_id: String, activity: Duration) {
    let mut buffer = Vec::new();
    let head_end = loop {
        if let Some(at) = find(&buffer, b"\r\n\r\n") {
            break at + 4;
        }
        if buffer.len() > 8192
            || !matches!(read_more(&stream, &mut buffer, activity).await, Ok(true))
        {
            return;
        }
    };
    let Some(key) = header(&buffer[..head_end], "sec-websocket-key") else {
        let _ = write_all(
            &stream,
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n",
        )
        .await;
        return;
    };
    let accept = actix_http::ws::hash_key(key);
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-accept: ",
    );
    out.extend_from_slice(&accept);
    out.extend_from_slice(b"\r\n\r\n");
    let established = format!(
        r#"{{"event":"pusher:connection_established","data":"{{\"socket_id\":\"{socket_id}\",\"activity_timeout\":{}}}"}}"#,
        activity.as_secs()
    );
    push_frame(&mut out, 0x1, established.as_bytes());
    if write_all(&stream, &out).await.is_err() {
        return;
    }
    buffer.drain(..head_end);
    loop {
        while let Some((opcode, range, used)) = client_frame(&mut buffer) {
            out.clear();
            let payload = &buffer[range];
            match opcode {
                0x1 if find(payload, b"\"pusher:subscribe\"").is_some() => {
                    let channel = json_string_after(payload, b"\"channel\":\"").unwrap_or(b"");
                    out.extend_from_slice(
                        br#"{"event":"pusher_internal:subscription_succeeded","channel":""#,
                    );
                    out.extend_from_slice(channel);
                    out.extend_from_slice(br#"","data":"{}"}"#);
                    let text = std::mem::take(&mut out);
                    push_frame(&mut out, 0x1, &text);
                }
                0x1 if find(payload, b"\"pusher:ping\"").is_some() => {
                    push_frame(&mut out, 0x1, br#"{"event":"pusher:pong","data":"{}"}"#);
                }
                0x8 => {
                    // Echo the close and end the connection (the socket closes on drop).
                    let code = payload.get(..2).unwrap_or(&[0x03, 0xE8]).to_vec();
                    push_frame(&mut out, 0x8, &code);
                    let _ = write_all(&stream, &out).await;
                    return;
                }
                0x9 => {
                    let ping = payload.to_vec();
                    push_frame(&mut out, 0xA, &ping);
                }
                _ => {}
            }
            buffer.drain(..used);
            if !out.is_empty() && write_all(&stream, &out).await.is_err() {
                return;
            }
        }
        if buffer.len() > MAX_BUFFERED {
            // The bench's clients send small frames: anything else ends the connection.
            return;
        }
        match read_more(&stream, &mut buffer, activity).await {
            Ok(true) => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                out.clear();
                push_frame(&mut out, 0x1, br#"{"event":"pusher:ping","data":"{}"}"#);
                if write_all(&stream, &out).await.is_err() {
                    return;
                }
            }
            Ok(false) | Err(_) => return,
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// The value of the header `name` (lower case) in an HTTP request head, trimmed.
fn header<'a>(head: &'a [u8], name: &str) -> Option<&'a [u8]> {
    head.split(|&b| b == b'\n').find_map(|line| {
        let colon = line.iter().position(|&b| b == b':')?;
        line[..colon]
            .eq_ignore_ascii_case(name.as_bytes())
            .then(|| line[colon + 1..].trim_ascii())
    })
}

/// The JSON string's bytes after `prefix` up to the next quote (the bench's channel names hold
/// no escapes).
fn json_string_after<'a>(text: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let start = find(text, prefix)? + prefix.len();
    let len = text[start..].iter().position(|&b| b == b'"')?;
    Some(&text[start..start + len])
}

/// Appends an unmasked server frame (FIN set).
fn push_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
    out.push(0x80 | opcode);
    match payload.len() {
        n if n < 126 => out.push(n as u8),
        n if n <= 0xFFFF => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
}

/// The first whole client frame in `buffer`: unmasks its payload in place and returns its
/// opcode, the payload's range and the bytes the frame takes. `None` until it has all arrived.
fn client_frame(buffer: &mut [u8]) -> Option<(u8, std::ops::Range<usize>, usize)> {
    let (&first, &second) = (buffer.first()?, buffer.get(1)?);
    let (len, mut at) = match second & 0x7F {
        126 => (
            u64::from(u16::from_be_bytes(buffer.get(2..4)?.try_into().ok()?)),
            4,
        ),
        127 => (u64::from_be_bytes(buffer.get(2..10)?.try_into().ok()?), 10),
        n => (u64::from(n), 2),
    };
    let mask: Option<[u8; 4]> = if second & 0x80 != 0 {
        let mask = buffer.get(at..at + 4)?.try_into().ok()?;
        at += 4;
        Some(mask)
    } else {
        None
    };
    let end = at.checked_add(usize::try_from(len).ok()?)?;
    let payload = buffer.get_mut(at..end)?;
    if let Some(mask) = mask {
        for (i, byte) in payload.iter_mut().enumerate() {
            *byte ^= mask[i % 4];
        }
    }
    Some((first & 0x0F, at..end, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_masked_client_frame_is_read_whole_or_not_at_all() {
        let mask = [1u8, 2, 3, 4];
        let text = br#"{"event":"pusher:subscribe","data":{"channel":"bench-7"}}"#;
        let mut frame = vec![0x81, 0x80 | text.len() as u8];
        frame.extend_from_slice(&mask);
        frame.extend(text.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        frame.extend_from_slice(&[0x88, 0x80]);
        for cut in 0..frame.len() - 2 {
            assert!(
                client_frame(&mut frame[..cut].to_vec()).is_none(),
                "cut at {cut}"
            );
        }
        let (opcode, range, used) = client_frame(&mut frame).expect("a whole frame");
        assert_eq!((opcode, &frame[range.clone()]), (0x1, &text[..]));
        assert_eq!(used, frame.len() - 2);
        assert_eq!(
            json_string_after(&frame[range], b"\"channel\":\""),
            Some(&b"bench-7"[..])
        );
    }

    #[test]
    fn server_frames_use_the_shortest_length() {
        for (len, head) in [(125, 2), (126, 4), (65_535, 4), (65_536, 10)] {
            let mut out = Vec::new();
            push_frame(&mut out, 0x1, &vec![b'x'; len]);
            assert_eq!((out[0], out.len()), (0x81, head + len), "length {len}");
        }
    }

    #[test]
    fn the_upgrade_key_is_found_in_any_case() {
        let head = b"GET /app/k HTTP/1.1\r\nHost: x\r\nSec-WebSocket-Key:  dGhlIHNhbXBsZSBub25jZQ== \r\n\r\n";
        assert_eq!(
            header(head, "sec-websocket-key"),
            Some(&b"dGhlIHNhbXBsZSBub25jZQ=="[..])
        );
        assert_eq!(header(head, "origin"), None);
    }
}

//! A TCP forwarder in front of a database or Redis server, which a test can cut to simulate an
//! outage (every connection dropped, new ones refused) and restore, or in which it can silence
//! one connection (kept open, nothing forwarded: what a lost NAT entry looks like).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};

pub struct Proxy {
    pub addr: SocketAddr,
    up: Arc<AtomicBool>,
    generation: watch::Sender<u64>,
    /// Dropped with the proxy: its thread ends, and every forwarded connection with it.
    _stop: oneshot::Sender<()>,
    /// Live forwarded connections by the local address of their upstream side (as the server
    /// behind the proxy sees the client): a send silences that one.
    silencers: Silencers,
}

type Silencers = Arc<Mutex<HashMap<SocketAddr, oneshot::Sender<()>>>>;

impl Proxy {
    /// Listens on a loopback port and forwards to `target`, on a thread of its own: a test that
    /// blocks its own thread (a synchronous database call) must not stall what goes through here,
    /// or the server's database connection would wait for the test while the test waits for it.
    pub fn start(target: SocketAddr) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("proxy bind");
        listener.set_nonblocking(true).expect("proxy listener");
        let addr = listener.local_addr().expect("proxy addr");
        let up = Arc::new(AtomicBool::new(true));
        let (generation, _) = watch::channel(0u64);
        let (stop, mut stopped) = oneshot::channel::<()>();
        let silencers = Silencers::default();
        let (accept_up, accept_generation, accept_silencers) =
            (up.clone(), generation.clone(), silencers.clone());
        std::thread::Builder::new()
            .name("test-proxy".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("proxy runtime");
                runtime.block_on(async move {
                    let listener = TcpListener::from_std(listener).expect("proxy listener");
                    loop {
                        let accepted = tokio::select! {
                            accepted = listener.accept() => accepted,
                            _ = &mut stopped => return,
                        };
                        let Ok((mut client, _)) = accepted else {
                            return;
                        };
                        if !accept_up.load(Ordering::SeqCst) {
                            continue; // refused: dropped at once
                        }
                        let mut cut = accept_generation.subscribe();
                        let silencers = accept_silencers.clone();
                        tokio::spawn(async move {
                            let Ok(mut upstream) = TcpStream::connect(target).await else {
                                return;
                            };
                            let (silence, mut silenced) = oneshot::channel();
                            let key = upstream.local_addr().ok();
                            if let Some(key) = key {
                                lock(&silencers).insert(key, silence);
                            }
                            tokio::select! {
                                _ = copy_bidirectional(&mut client, &mut upstream) => {}
                                _ = cut.changed() => {}
                                Ok(()) = &mut silenced => {
                                    // Both sockets stay open; nothing moves until a cut.
                                    let _ = cut.changed().await;
                                }
                            }
                            if let Some(key) = key {
                                lock(&silencers).remove(&key);
                            }
                        });
                    }
                });
            })
            .expect("proxy thread");
        Self {
            addr,
            up,
            generation,
            _stop: stop,
            silencers,
        }
    }

    /// The local addresses of the live forwarded connections' upstream sides (what the
    /// server behind the proxy lists as its clients' addresses).
    pub fn upstream_addrs(&self) -> Vec<SocketAddr> {
        lock(&self.silencers).keys().copied().collect()
    }

    /// Stops forwarding on one connection (by its upstream address) without closing it.
    /// Returns whether there was such a connection.
    pub fn silence(&self, upstream: SocketAddr) -> bool {
        lock(&self.silencers)
            .remove(&upstream)
            .is_some_and(|s| s.send(()).is_ok())
    }

    /// Drops every forwarded connection and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

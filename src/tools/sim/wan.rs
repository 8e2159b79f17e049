//! A WAN link emulated in user space: a TCP proxy on loopback that delays each direction, caps the
//! bytes in flight per connection (a TCP window) and the link's bandwidth, and injects stalls.
//!
//! This machine's kernel has no `netem`, so cross-region links are modelled here: with a one-way
//! delay D and a window W, one connection moves at most about W / 2D (bytes are "acknowledged"
//! one delay after delivery), N connections about N times that, all of them together at most the
//! link bandwidth. A stall holds one chunk back, and everything behind it on that connection waits
//! (head-of-line blocking, as a lost segment does in TCP). What it leaves out: slow start,
//! congestion control and real loss recovery, MTU-sized segmentation, jitter.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The shape of an emulated link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkSpec {
    /// Delay added to each direction (RTT = twice this).
    pub one_way_delay: Duration,
    /// Bytes per second per direction, shared by all connections.
    pub bandwidth: u64,
    /// Bytes in flight per connection and direction.
    pub window: usize,
    /// Every this many bytes on a connection, one chunk is held back for the given time.
    pub stall: Option<(u64, Duration)>,
}

impl LinkSpec {
    /// 40 ms each way (80 ms RTT), 1 Gbit/s, a 4 MiB window, no stalls.
    pub fn cross_region() -> Self {
        LinkSpec {
            one_way_delay: Duration::from_millis(40),
            bandwidth: 125_000_000,
            window: 4 << 20,
            stall: None,
        }
    }
}

/// Largest chunk read at once (bounded by the window too).
const READ_CHUNK: usize = 64 * 1024;

/// Serializes transmissions at the link's bandwidth.
struct Pacer {
    bytes_per_sec: u64,
    next_free: Mutex<Instant>,
}

impl Pacer {
    /// Waits until `n` bytes have had their turn on the wire.
    async fn send(&self, n: usize) {
        let cost = Duration::from_secs_f64(n as f64 / self.bytes_per_sec.max(1) as f64);
        let done = {
            let mut next = self.next_free.lock().unwrap_or_else(|p| p.into_inner());
            let start = (*next).max(Instant::now());
            *next = start + cost;
            *next
        };
        tokio::time::sleep_until(done).await;
    }
}

/// A running link: connect to [`WanLink::addr`] to reach the upstream through it.
pub struct WanLink {
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    connections: Arc<std::sync::atomic::AtomicU64>,
}

impl WanLink {
    /// Starts a link on `127.0.0.1:0` in front of `upstream`.
    pub async fn start(upstream: SocketAddr, spec: LinkSpec) -> std::io::Result<WanLink> {
        Self::start_on(TcpListener::bind("127.0.0.1:0").await?, upstream, spec)
    }

    /// Starts a link accepting on `listener` (the `wan-link` command binds the address asked
    /// for) in front of `upstream`.
    pub fn start_on(
        listener: TcpListener,
        upstream: SocketAddr,
        spec: LinkSpec,
    ) -> std::io::Result<WanLink> {
        let addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let pacers = [new_pacer(spec), new_pacer(spec)];
        let stop = shutdown.clone();
        let connections = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = connections.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = stop.cancelled() => return,
                    accepted = listener.accept() => accepted,
                };
                let Ok((client, _)) = accepted else { continue };
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let pacers = pacers.clone();
                let stop = stop.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = (client.set_nodelay(true), server.set_nodelay(true));
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    let up = pipe(cr, sw, spec, pacers[0].clone());
                    let down = pipe(sr, cw, spec, pacers[1].clone());
                    tokio::select! {
                        _ = stop.cancelled() => {}
                        _ = async { tokio::join!(up, down) } => {}
                    }
                });
            }
        });
        Ok(WanLink {
            addr,
            shutdown,
            connections,
        })
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.connections.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// `http://ADDR`, for a catalog endpoint that crosses the link.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for WanLink {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn new_pacer(spec: LinkSpec) -> Arc<Pacer> {
    Arc::new(Pacer {
        bytes_per_sec: spec.bandwidth,
        next_free: Mutex::new(Instant::now()),
    })
}

/// One direction of one connection: read, hold for the delay, pace, write; release the window
/// one more delay later (the acknowledgement's way back).
async fn pipe<R, W>(mut from: R, mut to: W, spec: LinkSpec, pacer: Arc<Pacer>)
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
    W: tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let window = Arc::new(Semaphore::new(spec.window.max(1)));
    let (tx, mut rx) = mpsc::channel::<(Instant, Bytes, OwnedSemaphorePermit)>(4096);
    let reader = async move {
        let mut carried: u64 = 0;
        let mut buf = vec![0u8; READ_CHUNK.min(spec.window.max(1))];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let Ok(permit) = window.clone().acquire_many_owned(n as u32).await else {
                        return;
                    };
                    let mut ready = Instant::now() + spec.one_way_delay;
                    if let Some((every, pause)) = spec.stall {
                        if carried / every.max(1) != (carried + n as u64) / every.max(1) {
                            ready += pause;
                        }
                    }
                    carried += n as u64;
                    if tx
                        .send((ready, Bytes::copy_from_slice(&buf[..n]), permit))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    };
    let writer = async move {
        while let Some((ready, data, permit)) = rx.recv().await {
            tokio::time::sleep_until(ready).await;
            pacer.send(data.len()).await;
            if to.write_all(&data).await.is_err() {
                return;
            }
            let ack = spec.one_way_delay;
            tokio::spawn(async move {
                tokio::time::sleep(ack).await;
                drop(permit);
            });
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}

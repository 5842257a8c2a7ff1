//! Serving a listener: the accept loop, what one connection may hold, and draining on shutdown.
//!
//! axum's `serve` has no header-read timeout, no idle timeout and no connection cap: one client
//! could hold connections (and file descriptors) for as long as it liked. Here every
//! connection is watched:
//! - a request head must arrive within `header_timeout` of its first byte (a new connection's
//!   first head within `header_timeout` of the accept), so half-sent requests are closed;
//! - a keep-alive connection with nothing in flight is closed after `idle_timeout` without
//!   traffic;
//! - past `max_connections` open on this listener (or with `accept` out of descriptors), the
//!   oldest connection still sending its head is closed to make room (`connections.rs`), and
//!   a new connection is closed at once only when there is none (the cap
//!   is lowered to what the open-file limit allows: `descriptors`);
//! - at shutdown, a connection with no request being served (idle, or a head still arriving)
//!   closes at once; one with a request in flight finishes it within the grace.
//!
//! hyper's own `header_read_timeout` is not used: it also runs while a keep-alive connection
//! waits idle for its next request, so it cannot tell a slow head from a quiet client.
//! Request bodies are bounded in time by the edge (`AVS_BODY_TIMEOUT_MS`).

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tower::ServiceExt;

use super::connections::{ConnectionClock, Roster};
use crate::config::ConnectionLimits;
use crate::sealed;

/// Serves `router` (the public `Api`, or the admin router) on `listener` until `stop` fires, then lets the open connections finish
/// (idle ones close at once) for up to `grace`. Returns whether every connection drained.
pub async fn serve<S>(
    listener: TcpListener,
    router: S,
    limits: ConnectionLimits,
    mut stop: tokio::sync::watch::Receiver<bool>,
    grace: Duration,
    name: &'static str,
) -> bool
where
    S: Clone + Send + Sync + 'static,
    S: tower::Service<axum::extract::Request, Response = Response, Error = Infallible>,
    S::Future: Send,
{
    let open = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let roster = Arc::new(Roster::default());
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    // hyper's own limits sit above the service's, so an oversized head is answered by the
    // edge with the JSON error shape; only a head past these gets hyper's bare 431.
    http.max_buf_size((limits.max_header_bytes * 4).max(64 * 1024))
        .max_headers(limits.max_headers * 2)
        // Bodies are handed to the socket as they are (vectored writes), never copied into
        // hyper's buffer first: an Oracle Health document is hundreds of KB.
        .writev(true)
        .header_read_timeout(None);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|stop| *stop) => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors: make room by closing the oldest half-sent head, or,
                // with none (or another failure), back off instead of spinning.
                tracing::warn!(listener = name, error = %e, "accept failed");
                let out_of_descriptors = matches!(
                    rustix::io::Errno::from_io_error(&e),
                    Some(rustix::io::Errno::MFILE | rustix::io::Errno::NFILE)
                );
                if !(out_of_descriptors && roster.close_oldest_unfinished().await) {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                continue;
            }
        };
        let permit = match open.clone().try_acquire_owned() {
            Ok(permit) => Ok(permit),
            // At the cap: the oldest unfinished head makes way for a connection just accepted.
            Err(_) if roster.close_oldest_unfinished().await => open.clone().try_acquire_owned(),
            Err(full) => Err(full),
        };
        let Ok(permit) = permit else {
            metrics::counter!("avs_connections_refused_total", "listener" => name).increment(1);
            tracing::debug!(
                listener = name,
                "connection cap reached; closing a new connection"
            );
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (clock, place) = roster.join();
        let io = TokioIo::new(Watched {
            stream,
            clock: clock.clone(),
        });
        let service = Tracked {
            router: router.clone(),
            clock: clock.clone(),
        };
        let connection = graceful.watch(http.serve_connection(io, service));
        let stopping = stop.clone();
        tokio::spawn(async move {
            // Dropped in reverse: the connection (inside `guard`), its slot, then its place on
            // the roster, whose leaving tells a listener waiting for room that both are free.
            let _place = place;
            let _permit = permit;
            guard(connection, &clock, limits, stopping).await;
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => true,
        () = tokio::time::sleep(grace) => {
            tracing::warn!(listener = name, grace_secs = grace.as_secs(), "shutdown grace over; connections still open are dropped");
            false
        }
    }
}

/// Runs one connection, closing it when its head or idle deadline passes, or at shutdown when
/// no request is being served on it. hyper's graceful shutdown closes idle connections but
/// waits for a head that has begun to arrive: a client that never finishes one held the
/// process for the header timeout (9.5 s measured, #20).
async fn guard<C>(
    connection: C,
    clock: &ConnectionClock,
    limits: ConnectionLimits,
    mut stop: tokio::sync::watch::Receiver<bool>,
) where
    C: Future,
{
    tokio::pin!(connection);
    let mut stopping = false;
    loop {
        let deadline = clock.deadline(&limits);
        tokio::select! {
            _ = &mut connection => return,
            () = clock.closing() => {
                // The listener needs the room; a head that finished meanwhile is served.
                if clock.busy.load(Ordering::Relaxed) == 0 {
                    return;
                }
            }
            () = tokio::time::sleep_until(deadline) => {
                if clock.deadline(&limits) <= Instant::now() {
                    metrics::counter!("avs_connections_timed_out_total").increment(1);
                    return; // dropping the connection closes the socket
                }
            }
            _ = stop.wait_for(|stop| *stop), if !stopping => {
                if clock.busy.load(Ordering::Relaxed) == 0 {
                    return;
                }
                // A request in flight finishes; hyper then closes the connection.
                stopping = true;
            }
        }
    }
}

/// The socket, noting its traffic on the connection's clock.
struct Watched {
    stream: TcpStream,
    clock: Arc<ConnectionClock>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.clock.traffic(true);
        }
        polled
    }
}

impl Watched {
    /// Sends `data`, a slice of a sealed document, from its file without copying it.
    fn poll_send_sealed(&self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let Some((fd, mut offset)) = sealed::find(data) else {
            return Poll::Ready(Err(io::ErrorKind::InvalidInput.into()));
        };
        // SAFETY: `data` is borrowed from a `Bytes` whose owner holds this file open for as
        // long as the slice lives, which outlasts this call.
        let file = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let sent = self.poll_io(cx, || {
            rustix::fs::sendfile(&self.stream, file, Some(&mut offset), data.len()).map_err(io::Error::from)
        });
        if let Poll::Ready(Ok(n)) = sent {
            metrics::counter!("avs_document_bytes_sent_from_files_total").increment(n as u64);
        }
        sent
    }

    /// Writes `bufs` with more to follow at once, so the kernel holds them for the next send
    /// (the socket has `TCP_NODELAY`, which would send a head alone).
    fn poll_send_more(&self, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        self.poll_io(cx, || {
            let mut control = rustix::net::SendAncillaryBuffer::default();
            rustix::net::sendmsg(&self.stream, bufs, &mut control, rustix::net::SendFlags::MORE)
                .map_err(io::Error::from)
        })
    }

    fn poll_io(
        &self,
        cx: &mut Context<'_>,
        mut io: impl FnMut() -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            std::task::ready!(self.stream.poll_write_ready(cx))?;
            match self.stream.try_io(tokio::io::Interest::WRITABLE, &mut io) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                done => return Poll::Ready(done),
            }
        }
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let polled = if sealed::find(data).is_some() {
            self.poll_send_sealed(cx, data)
        } else {
            Pin::new(&mut self.stream).poll_write(cx, data)
        };
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.clock.traffic(false);
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // A sealed document's slice goes out with sendfile; what comes before it (the head)
        // is written first, held back (MSG_MORE) so head and body still leave together.
        let polled = match bufs.iter().position(|b| sealed::find(b).is_some()) {
            None => Pin::new(&mut self.stream).poll_write_vectored(cx, bufs),
            Some(0) => self.poll_send_sealed(cx, &bufs[0]),
            Some(n) => self.poll_send_more(cx, &bufs[..n]),
        };
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.clock.traffic(false);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The router as hyper's service, marking the connection busy while a request is served.
struct Tracked<S> {
    router: S,
    clock: Arc<ConnectionClock>,
}

/// A request being served; the connection is idle again once every one has ended.
struct Busy(Arc<ConnectionClock>);

impl Busy {
    fn start(clock: &Arc<ConnectionClock>) -> Busy {
        clock.busy.fetch_add(1, Ordering::Relaxed);
        clock.head_started.store(0, Ordering::Relaxed);
        Busy(clock.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.last_traffic.store(self.0.now_ms(), Ordering::Relaxed);
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<S> hyper::service::Service<hyper::Request<Incoming>> for Tracked<S>
where
    S: Clone
        + Send
        + 'static
        + tower::Service<axum::extract::Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Served<tower::util::Oneshot<S, axum::extract::Request>>;

    fn call(&self, request: hyper::Request<Incoming>) -> Self::Future {
        let busy = Busy::start(&self.clock);
        Served {
            answer: self.router.clone().oneshot(request.map(axum::body::Body::new)),
            busy: Some(busy),
        }
    }
}

pin_project_lite::pin_project! {
    /// A request's answer, the connection busy until it is ready. Not boxed: boxing it moved
    /// the whole request into the box once more per hit (callgrind).
    struct Served<F> {
        #[pin]
        answer: F,
        busy: Option<Busy>,
    }
}

impl<F: Future> Future for Served<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let answer = std::task::ready!(this.answer.poll(cx));
        this.busy.take();
        Poll::Ready(answer)
    }
}

//! Serving HTTP listeners with the deadlines a public endpoint needs.

use std::time::Duration;

/// How long a client may take to send its request headers, where no setting says otherwise.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The deadlines every connection and request is held to.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// From the connection's start, or the end of its last answer, to the end of the next
    /// request's headers: a client that sends nothing, sends headers a byte at a time
    /// (slowloris) or idles on a kept-alive connection is cut off.
    pub header_read: Duration,
    /// From the headers to the answer, the body included: a body sent a byte at a time is
    /// answered 408 and the connection closed.
    pub request: Duration,
}

impl Default for Deadlines {
    fn default() -> Self {
        Self {
            header_read: HEADER_READ_TIMEOUT,
            request: Duration::from_secs(30),
        }
    }
}

/// Serves `app` connection by connection until `shutdown`, with `deadlines` (`axum::serve`
/// sets none, and hyper-util's protocol-detecting builder has no timer before it has read
/// a request: a client that sent nothing kept its connection for good). HTTP/1 only; on
/// shutdown, connections finish what they are answering.
pub async fn serve_guarded(
    what: &'static str,
    listener: tokio::net::TcpListener,
    app: axum::Router,
    deadlines: Deadlines,
    shutdown: tokio_util::sync::CancellationToken,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;

    let app = app.layer(tower_http::timeout::TimeoutLayer::with_status_code(
        axum::http::StatusCode::REQUEST_TIMEOUT,
        deadlines.request,
    ));
    while let Some(stream) = accept(what, &listener, &shutdown).await {
        let app = app.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(deadlines.header_read);
            let connection =
                builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
            tokio::pin!(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                _ = shutdown.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = ended {
                tracing::debug!(error = %e, what, "connection ended");
            }
        });
    }
}

/// The next connection, or `None` at shutdown.
async fn accept(
    what: &'static str,
    listener: &tokio::net::TcpListener,
    shutdown: &tokio_util::sync::CancellationToken,
) -> Option<tokio::net::TcpStream> {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => return Some(stream),
                Err(e) => {
                    // Out of file descriptors, say: pause rather than spin.
                    tracing::warn!(error = %e, what, "connection not accepted");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

/// What an HTTP/2 client sends first (RFC 9113 §3.4).
const HTTP2_PREFACE_LEN: usize = 24;

/// Accepted connections for an HTTP/2 (gRPC) server, each handed on only once its client has
/// sent the connection preface within `header_read`: hyper's HTTP/2 server has no deadline
/// before its handshake, so a client that connected and sent nothing (or a byte at a time)
/// kept its connection. After the handshake the server's keep-alive pings, request timeout
/// and connection age bound it (see the operations API). Ends at `shutdown`.
pub fn http2_incoming(
    what: &'static str,
    listener: tokio::net::TcpListener,
    header_read: Duration,
    shutdown: tokio_util::sync::CancellationToken,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> + Send + 'static {
    let (tx, rx) = tokio::sync::mpsc::channel::<tokio::net::TcpStream>(64);
    tokio::spawn(async move {
        while let Some(stream) = accept(what, &listener, &shutdown).await {
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(header_read, preface_sent(&stream)).await {
                    Ok(Ok(())) => {
                        // Small answers go at once: with Nagle's algorithm each waited
                        // ~40 ms for the client's delayed acknowledgement.
                        let _ = stream.set_nodelay(true);
                        let _ = tx.send(stream).await;
                    }
                    Ok(Err(e)) => tracing::debug!(error = %e, what, "connection ended"),
                    Err(_) => tracing::debug!(what, "no HTTP/2 preface in time: closed"),
                }
            });
        }
    });
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|stream| (Ok(stream), rx))
    })
}

/// Waits until the connection's first [`HTTP2_PREFACE_LEN`] bytes have arrived (read
/// without consuming them: the server reads them again).
async fn preface_sent(stream: &tokio::net::TcpStream) -> std::io::Result<()> {
    let mut buf = [0u8; HTTP2_PREFACE_LEN];
    loop {
        stream.readable().await?;
        match stream.peek(&mut buf).await? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n if n >= HTTP2_PREFACE_LEN => return Ok(()),
            // Part of it: the socket stays readable, so wait a little before looking again.
            _ => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::{Duration, Instant};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    const DEADLINE: Duration = Duration::from_millis(300);

    async fn server() -> (std::net::SocketAddr, tokio_util::sync::CancellationToken) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().route(
            "/",
            axum::routing::post(|body: axum::body::Bytes| async move { body.len().to_string() }),
        );
        let shutdown = tokio_util::sync::CancellationToken::new();
        let deadlines = super::Deadlines {
            header_read: DEADLINE,
            request: Duration::from_secs(1),
        };
        tokio::spawn(super::serve_guarded(
            "test",
            listener,
            app,
            deadlines,
            shutdown.clone(),
        ));
        (addr, shutdown)
    }

    /// How long until the server closes the connection (reads until EOF or an error).
    async fn closed_after(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
        let started = Instant::now();
        let mut buf = [0u8; 1024];
        loop {
            match tokio::time::timeout_at((started + limit).into(), stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
                Ok(Ok(_)) => {}
                Err(_) => return None,
            }
        }
    }

    #[tokio::test]
    async fn a_connection_that_sends_nothing_is_closed() {
        let (addr, _shutdown) = server().await;
        let mut idle = TcpStream::connect(addr).await.unwrap();
        let closed = closed_after(&mut idle, Duration::from_secs(3)).await;
        assert!(closed.is_some(), "kept open");
    }

    #[tokio::test]
    async fn a_kept_alive_connection_left_idle_is_closed() {
        let (addr, _shutdown) = server().await;
        let mut conn = TcpStream::connect(addr).await.unwrap();
        conn.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let n = conn.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        let closed = closed_after(&mut conn, Duration::from_secs(3)).await;
        assert!(closed.is_some(), "an idle keep-alive connection was kept");
    }

    #[tokio::test]
    async fn a_body_sent_a_byte_at_a_time_is_cut_off() {
        let (addr, _shutdown) = server().await;
        let mut slow = TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
            .await
            .unwrap();
        let started = Instant::now();
        let mut cut = false;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if slow.write_all(b"a").await.is_err() {
                cut = true;
                break;
            }
            let mut buf = [0u8; 512];
            match tokio::time::timeout(Duration::from_millis(1), slow.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => {
                    cut = true;
                    break;
                }
                Ok(Ok(n)) => {
                    // An answer (408) before the body ended: cut off too.
                    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 408"));
                    cut = true;
                    break;
                }
                Err(_) => {}
            }
        }
        assert!(cut, "a trickled body kept the request open");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn an_http2_connection_is_handed_on_only_after_its_preface() {
        use futures::StreamExt as _;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = tokio_util::sync::CancellationToken::new();
        let incoming = super::http2_incoming("test", listener, DEADLINE, shutdown.clone());
        tokio::pin!(incoming);
        let mut silent = TcpStream::connect(addr).await.unwrap();
        let mut trickle = TcpStream::connect(addr).await.unwrap();
        trickle.write_all(b"PRI * HTTP/2.0").await.unwrap();
        let mut good = TcpStream::connect(addr).await.unwrap();
        good.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .await
            .unwrap();
        let handed = tokio::time::timeout(Duration::from_secs(2), incoming.next())
            .await
            .expect("the client that sent its preface")
            .unwrap()
            .unwrap();
        assert_eq!(handed.peer_addr().unwrap(), good.local_addr().unwrap());
        // The other two are closed at the deadline and never handed on.
        assert!(
            closed_after(&mut silent, Duration::from_secs(3))
                .await
                .is_some()
        );
        assert!(
            closed_after(&mut trickle, Duration::from_secs(3))
                .await
                .is_some()
        );
        assert!(
            tokio::time::timeout(Duration::from_millis(200), incoming.next())
                .await
                .is_err()
        );
        shutdown.cancel();
    }
}

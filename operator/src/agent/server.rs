//! `/metrics`, `/healthz` and `/readyz` over plain HTTP/1.1 (hyper).
//!
//! - `/healthz`: 200 while the engine loop makes progress (a scan ended
//!   within the stale limit, three timer intervals and a minute); a scan
//!   stuck on a hung kernel read turns it 503 and the kubelet restarts us.
//! - `/readyz`: 200 once the first scan's report was written.
//! - `/metrics`: the registry in the Prometheus text format.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Liveness and readiness, shared by the engine loop and the server.
///
/// Progress is measured on the monotonic clock: a wall clock stepped by NTP
/// (or by hand) must not make a working agent look dead to its liveness
/// probe, nor a stuck one look alive.
#[derive(Debug)]
pub struct Health {
    ready: AtomicBool,
    /// Milliseconds after `start` of the last sign of progress.
    progress: AtomicU64,
    start: Instant,
    stale_after: Duration,
}

impl Health {
    /// Unhealthy when no progress was made for `stale_after`.
    pub fn new(stale_after: Duration) -> Self {
        Self {
            ready: AtomicBool::new(false),
            progress: AtomicU64::new(0),
            start: Instant::now(),
            stale_after,
        }
    }

    /// The loop made progress (a scan ended).
    pub fn progress(&self) {
        self.progress_at(Instant::now());
    }

    /// Progress at `now` (tests drive the clock).
    pub fn progress_at(&self, now: Instant) {
        let ms = now.saturating_duration_since(self.start).as_millis();
        self.progress
            .store(u64::try_from(ms).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// The first report is out.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
    }

    /// Whether the first report is out.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Whether the loop made progress recently.
    pub fn is_live(&self) -> bool {
        self.is_live_at(Instant::now())
    }

    /// Whether progress was made within `stale_after` of `now`.
    pub fn is_live_at(&self, now: Instant) -> bool {
        let last = self.start + Duration::from_millis(self.progress.load(Ordering::Relaxed));
        now.saturating_duration_since(last) <= self.stale_after
    }
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    r
}

const PLAIN: &str = "text/plain; charset=utf-8";
const METRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Answer one request.
pub fn respond(
    method: &Method,
    path: &str,
    registry: &Registry,
    health: &Health,
) -> Response<Full<Bytes>> {
    if method != Method::GET && method != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, PLAIN, "GET only\n".into());
    }
    match path {
        "/metrics" => match super::metrics::encode(registry) {
            Ok(body) => text(StatusCode::OK, METRICS, body),
            Err(_) => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                PLAIN,
                "metrics encoding failed\n".into(),
            ),
        },
        "/healthz" if health.is_live() => text(StatusCode::OK, PLAIN, "ok\n".into()),
        "/healthz" => text(
            StatusCode::SERVICE_UNAVAILABLE,
            PLAIN,
            "no scan finished recently\n".into(),
        ),
        "/readyz" if health.is_ready() => text(StatusCode::OK, PLAIN, "ok\n".into()),
        "/readyz" => text(
            StatusCode::SERVICE_UNAVAILABLE,
            PLAIN,
            "first report not written yet\n".into(),
        ),
        _ => text(StatusCode::NOT_FOUND, PLAIN, "not found\n".into()),
    }
}

/// Serve until `stop` turns true.
pub async fn serve(
    listener: TcpListener,
    registry: Arc<Registry>,
    health: Arc<Health>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => return,
        };
        let (stream, _) = match accepted {
            Ok(s) => s,
            Err(e) => {
                // EMFILE and the like: wait instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let registry = Arc::clone(&registry);
        let health = Arc::clone(&health);
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let r = respond(req.method(), req.uri().path(), &registry, &health);
                async move { Ok::<_, Infallible>(r) }
            });
            let conn = http1::Builder::new()
                // A scraper that stalls must not hold a connection forever.
                .header_read_timeout(Duration::from_secs(10))
                .timer(hyper_util::rt::TokioTimer::new())
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "metrics connection");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body(r: Response<Full<Bytes>>) -> String {
        String::from_utf8(r.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
    }

    #[tokio::test]
    async fn endpoints_answer() {
        let mut registry = Registry::default();
        super::super::metrics::Metrics::register(&mut registry);
        let health = Health::new(Duration::from_secs(60));
        let get = Method::GET;
        let r = respond(&get, "/readyz", &registry, &health);
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        health.set_ready();
        assert_eq!(
            respond(&get, "/readyz", &registry, &health).status(),
            StatusCode::OK
        );
        assert_eq!(
            respond(&get, "/healthz", &registry, &health).status(),
            StatusCode::OK
        );
        let stale = Health::new(Duration::ZERO);
        stale.progress.store(0, Ordering::Relaxed);
        assert_eq!(
            respond(&get, "/healthz", &registry, &stale).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        let m = respond(&get, "/metrics", &registry, &health);
        assert_eq!(m.status(), StatusCode::OK);
        assert!(body(m).await.contains("warden_build_info"));
        assert_eq!(
            respond(&get, "/nope", &registry, &health).status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            respond(&Method::POST, "/metrics", &registry, &health).status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
    }

    /// Over a real socket, as a scraper sees it.
    #[tokio::test]
    async fn serves_over_tcp_and_stops() {
        let mut registry = Registry::default();
        super::super::metrics::Metrics::register(&mut registry);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop_tx, stop) = watch::channel(false);
        let server = tokio::spawn(serve(
            listener,
            Arc::new(registry),
            Arc::new(Health::new(Duration::from_secs(60))),
            stop,
        ));
        // A plain blocking client, as simple as a scraper gets.
        let out = tokio::task::spawn_blocking(move || {
            use std::io::{Read, Write};
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        })
        .await
        .unwrap();
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
        assert!(out.contains("warden_scan_duration_seconds"), "{out}");
        stop_tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("server stops")
            .unwrap();
    }

    #[test]
    fn liveness_follows_the_monotonic_clock() {
        let h = Health::new(Duration::from_secs(60));
        let t0 = Instant::now();
        h.progress_at(t0);
        assert!(h.is_live_at(t0 + Duration::from_secs(59)));
        assert!(!h.is_live_at(t0 + Duration::from_secs(61)));
        h.progress_at(t0 + Duration::from_secs(61));
        assert!(h.is_live_at(t0 + Duration::from_secs(100)));
    }
}

//! `radfm serve`: the model behind HTTP, next to a PACS.
//!
//! ```text
//! GET  /healthz      200 once the model is loaded (no token needed)
//! GET  /v1/model     the model card
//! POST /v1/predict   application/dicom, one Part-10 file -> {"sop_instance_uid", "scores", "model"}
//! POST /v1/sr        application/dicom, one Part-10 file -> application/dicom, its SR
//! GET  /metrics      Prometheus text
//! ```
//!
//! Inference runs on a bounded pool: `workers` requests run at once, at most
//! `queue` more wait for a worker, and beyond that the server answers 503
//! with `Retry-After` (backpressure) rather than piling requests up. With
//! `batch` > 1 each worker takes up to `batch` waiting requests at a time
//! and scores them in one forward pass (faster per image; the scores may
//! differ from a one-image pass in the last bits). While other workers are
//! busy, a worker waits up to `batch_wait` from taking a batch's first
//! request for the batch to fill; while several are idle it waits for nothing and
//! splits what is waiting evenly between them. The body
//! is bounded before it is read (413); a wrong content type is 415; a file
//! that is not a readable DICOM image is 422 with `{"error": reason}`. Bad
//! input is never a 5xx. On SIGTERM or Ctrl-C the server stops accepting,
//! finishes the requests in flight and returns.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::metrics::Metrics;
use crate::{analyse, hash_uid, model_json, scores_json, sr_bytes, InputError, Model};

/// How the server runs.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// the bearer token every endpoint but `/healthz` requires
    pub token: Option<String>,
    /// the largest request body, in bytes
    pub max_body: usize,
    /// inference requests that run at once
    pub workers: usize,
    /// admitted requests that may wait for a worker
    pub queue: usize,
    /// allow a non-loopback address without a token
    pub insecure_no_auth: bool,
    /// up to this many waiting requests scored in one forward pass per worker
    /// (1: one at a time, and scores equal `radfm predict`'s exactly)
    pub batch: usize,
    /// with `batch` > 1 and the other workers busy: how long a worker may wait
    /// for its batch to fill, counted from taking the batch's first request
    pub batch_wait: std::time::Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "{0} is not a loopback address: give a token file, or allow it without authentication explicitly"
    )]
    OpenWithoutToken(SocketAddr),
    #[error("the token is empty")]
    EmptyToken,
    #[error("listening on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("serving: {0}")]
    Io(#[from] std::io::Error),
}

impl Config {
    /// The checks made before listening: a non-loopback address needs a
    /// token unless explicitly allowed without one.
    pub fn check(&self) -> Result<(), ServeError> {
        if self.token.as_deref().is_some_and(|t| t.trim().is_empty()) {
            return Err(ServeError::EmptyToken);
        }
        if !self.listen.ip().is_loopback() && self.token.is_none() && !self.insecure_no_auth {
            return Err(ServeError::OpenWithoutToken(self.listen));
        }
        Ok(())
    }
}

struct Inner {
    model: Arc<dyn Model>,
    /// sha256 of the token: compared in constant time, and the token itself not kept
    token: Option<[u8; 32]>,
    max_body: usize,
    workers: Arc<Semaphore>,
    admission: Arc<Semaphore>,
    /// with `batch` > 1: the queue the batching workers take requests from
    batcher: Option<std::sync::mpsc::Sender<Job>>,
    metrics: Metrics,
}

/// One request waiting for a batching worker.
struct Job {
    body: axum::body::Bytes,
    reply: tokio::sync::oneshot::Sender<Result<crate::Analysis, InputError>>,
}

/// What the batching workers share: the queue, and how many of them are idle
/// (how many requests wait in it is the metrics' `queued`).
struct Batcher {
    jobs: std::sync::Mutex<std::sync::mpsc::Receiver<Job>>,
    idle: std::sync::atomic::AtomicUsize,
    batch: usize,
    wait: std::time::Duration,
}

type Shared = Arc<Inner>;

/// An error answer: a status, a kind for the metrics, and a reason.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    reason: String,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, reason: impl Into<String>) -> ApiError {
        ApiError {
            status,
            kind,
            reason: reason.into(),
        }
    }
}

impl From<InputError> for ApiError {
    fn from(e: InputError) -> ApiError {
        let status = if e.is_bad_input() {
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        ApiError::new(status, e.kind(), e.to_string())
    }
}

/// The error kind of a response, for the metrics middleware.
#[derive(Clone, Copy)]
struct ErrorKind(&'static str);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, Json(serde_json::json!({"error": self.reason}))).into_response();
        r.extensions_mut().insert(ErrorKind(self.kind));
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

/// The routes, with authentication and metrics, for a loaded model.
pub fn router(model: Arc<dyn Model>, cfg: &Config) -> Router {
    let workers = cfg.workers.max(1);
    let batch = cfg.batch.max(1);
    let (batcher, jobs) = if batch > 1 {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let b = Batcher {
            jobs: std::sync::Mutex::new(rx),
            idle: workers.into(),
            batch,
            wait: cfg.batch_wait,
        };
        (Some(tx), Some(Arc::new(b)))
    } else {
        (None, None)
    };
    let state: Shared = Arc::new(Inner {
        model,
        token: cfg
            .token
            .as_deref()
            .map(|t| Sha256::digest(t.trim().as_bytes()).into()),
        max_body: cfg.max_body,
        workers: Arc::new(Semaphore::new(workers)),
        admission: Arc::new(Semaphore::new(workers * batch + cfg.queue)),
        batcher,
        metrics: Metrics::default(),
    });
    if let Some(jobs) = jobs {
        for k in 0..workers {
            let (jobs, s) = (jobs.clone(), Arc::downgrade(&state));
            std::thread::Builder::new()
                .name(format!("radfm-batch-{k}"))
                .spawn(move || batch_worker(&jobs, &s))
                .expect("starting a batching worker");
        }
    }
    Router::new()
        .route("/healthz", get(healthz))
        .route("/v1/model", get(model_card))
        .route("/v1/predict", post(predict))
        .route("/v1/sr", post(sr))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// Serve until `shutdown` resolves, then finish the requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Bind `cfg.listen`, call `ready` with the address bound (port 0 picks one),
/// and serve until SIGTERM or Ctrl-C.
pub fn run(
    model: Arc<dyn Model>,
    cfg: &Config,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    cfg.check()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(cfg.workers.max(1) + 2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .map_err(|source| ServeError::Bind {
                addr: cfg.listen,
                source,
            })?;
        let addr = listener.local_addr()?;
        ready(addr);
        serve(listener, router(model, cfg), terminate()).await?;
        tracing::info!("stopped: requests in flight finished");
        Ok(())
    })
}

/// SIGTERM or Ctrl-C.
pub async fn terminate() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

/// The route label of a path: one of the known routes, or `other` (so that
/// unknown paths cannot grow the metrics without bound).
fn route_of(path: &str) -> &'static str {
    match path {
        "/healthz" => "/healthz",
        "/v1/model" => "/v1/model",
        "/v1/predict" => "/v1/predict",
        "/v1/sr" => "/v1/sr",
        "/metrics" => "/metrics",
        _ => "other",
    }
}

/// Equal in constant time (both are sha256 digests of the same length).
fn same_digest(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Authentication (all but /healthz), then the request, then its metrics.
async fn guard(State(s): State<Shared>, req: Request, next: Next) -> Response {
    let t0 = Instant::now();
    let route = route_of(req.uri().path());
    let resp = match (&s.token, route) {
        (Some(want), r) if r != "/healthz" => {
            let given = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(|t| <[u8; 32]>::from(Sha256::digest(t.trim().as_bytes())));
            if given.is_some_and(|g| same_digest(&g, want)) {
                next.run(req).await
            } else {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "a valid Authorization: Bearer token is required",
                )
                .into_response()
            }
        }
        _ => next.run(req).await,
    };
    let status = resp.status();
    s.metrics
        .observe(route, status.as_u16(), t0.elapsed().as_secs_f64());
    if let Some(ErrorKind(kind)) = resp.extensions().get::<ErrorKind>() {
        s.metrics.error(kind);
        if status.is_server_error() {
            tracing::error!(route, status = status.as_u16(), kind, "request failed");
        } else {
            tracing::info!(route, status = status.as_u16(), kind, "request refused");
        }
    }
    resp
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

async fn model_card(State(s): State<Shared>) -> Json<serde_json::Value> {
    Json(s.model.card())
}

async fn metrics(State(s): State<Shared>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        s.metrics.render(),
    )
        .into_response()
}

/// The body of a `application/dicom` request, bounded before it is read.
async fn dicom_body(s: &Inner, req: Request) -> Result<axum::body::Bytes, ApiError> {
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/dicom") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "Content-Type {:?}: send one DICOM Part-10 file as application/dicom",
                if ct.is_empty() { "(none)" } else { ct }
            ),
        ));
    }
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is over the limit of {} bytes", s.max_body),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > s.max_body as u64) {
        return Err(too_large());
    }
    match http_body_util::Limited::new(req.into_body(), s.max_body)
        .collect()
        .await
    {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_body",
            format!("reading the body: {e}"),
        )),
    }
}

/// How many requests a worker takes, once it has the first of `waiting`:
/// while other workers are idle, an even share of what is waiting (and no
/// waiting for more); while they are all busy, a full batch, waiting for it.
fn batch_target(batch: usize, idle: usize, waiting: usize) -> (usize, bool) {
    if idle > 1 {
        (waiting.div_ceil(idle).clamp(1, batch), false)
    } else {
        (batch, true)
    }
}

/// A batching worker: takes the oldest waiting request, then as many more as
/// [`batch_target`] says, waiting for them at most `wait` from taking the
/// first (so no request waits more than `wait` for a batch to fill); scores
/// them in one pass and answers each. Ends when the server is dropped.
fn batch_worker(b: &Batcher, state: &std::sync::Weak<Inner>) {
    use std::sync::mpsc::RecvTimeoutError;
    loop {
        let mut taken = Vec::with_capacity(b.batch);
        let s = {
            let Ok(rx) = b.jobs.lock() else { return };
            match rx.recv() {
                Ok(j) => taken.push(j),
                Err(_) => return,
            }
            let Some(s) = state.upgrade() else { return };
            let waiting = usize::try_from(s.metrics.queued.load(Ordering::Acquire)).unwrap_or(1);
            let (target, wait) = batch_target(b.batch, b.idle.load(Ordering::Acquire), waiting);
            // counted from now: when the worker took the first request, which
            // is its arrival if the worker was idle, else when the worker freed
            let deadline = Instant::now() + b.wait;
            while taken.len() < target {
                let next = match rx.try_recv() {
                    Ok(j) => Ok(j),
                    Err(_) if !wait => break,
                    Err(_) => {
                        let left = deadline.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            break;
                        }
                        rx.recv_timeout(left)
                    }
                };
                match next {
                    Ok(j) => taken.push(j),
                    Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                }
            }
            s.metrics
                .queued
                .fetch_sub(taken.len() as i64, Ordering::AcqRel);
            b.idle.fetch_sub(1, Ordering::AcqRel);
            s
        };
        let n = taken.len() as i64;
        s.metrics.batch(taken.len());
        s.metrics.in_flight.fetch_add(n, Ordering::Relaxed);
        let bodies: Vec<&[u8]> = taken.iter().map(|j| &j.body[..]).collect();
        let results = crate::analyse_batch(&*s.model, &bodies);
        s.metrics.in_flight.fetch_sub(n, Ordering::Relaxed);
        b.idle.fetch_add(1, Ordering::AcqRel);
        for (j, r) in taken.into_iter().zip(results) {
            let _ = j.reply.send(r);
        }
    }
}

/// Score one body: on the pool, or through the batching workers.
async fn analysed(s: &Shared, body: axum::body::Bytes) -> Result<crate::Analysis, ApiError> {
    let Some(tx) = &s.batcher else {
        return infer(s, move |m| analyse(m, &body)).await;
    };
    let Ok(_admitted) = s.admission.clone().try_acquire_owned() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "the inference queue is full: retry later",
        ));
    };
    let (reply, answer) = tokio::sync::oneshot::channel();
    s.metrics.queued.fetch_add(1, Ordering::AcqRel);
    tx.send(Job { body, reply }).map_err(|_| {
        s.metrics.queued.fetch_sub(1, Ordering::AcqRel);
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "shutting down",
        )
    })?;
    match answer.await {
        Ok(r) => r.map_err(ApiError::from),
        Err(_) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "a batching worker stopped",
        )),
    }
}

/// Run `f` on the inference pool: refused with 503 when the queue is full.
async fn infer<T: Send + 'static>(
    s: &Shared,
    f: impl FnOnce(&dyn Model) -> Result<T, InputError> + Send + 'static,
) -> Result<T, ApiError> {
    let Ok(admitted) = s.admission.clone().try_acquire_owned() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "the inference queue is full: retry later",
        ));
    };
    s.metrics.queued.fetch_add(1, Ordering::Relaxed);
    let worker = s.workers.clone().acquire_owned().await;
    s.metrics.queued.fetch_sub(1, Ordering::Relaxed);
    let worker = worker.map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "shutting down",
        )
    })?;
    let shared = s.clone();
    shared.metrics.in_flight.fetch_add(1, Ordering::Relaxed);
    let task = tokio::task::spawn_blocking(move || {
        // the permits go with the work: a client that hangs up does not free
        // a worker before its inference ends
        let _permits = (admitted, worker);
        let r = f(&*shared.model);
        shared.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
        r
    });
    match task.await {
        Ok(r) => r.map_err(ApiError::from),
        Err(e) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("inference task: {e}"),
        )),
    }
}

async fn predict(
    State(s): State<Shared>,
    req: Request,
) -> Result<Json<serde_json::Value>, ApiError> {
    let body = dicom_body(&s, req).await?;
    let t0 = Instant::now();
    let a = analysed(&s, body).await?;
    let (sop, scores) = (a.sop_instance_uid, a.scores);
    tracing::info!(
        sop = %hash_uid(&sop),
        ms = t0.elapsed().as_millis() as u64,
        "predicted"
    );
    Ok(Json(serde_json::json!({
        "sop_instance_uid": sop,
        "scores": scores_json(&*s.model, &scores),
        "model": model_json(&*s.model),
    })))
}

async fn sr(State(s): State<Shared>, req: Request) -> Result<Response, ApiError> {
    let body = dicom_body(&s, req).await?;
    let t0 = Instant::now();
    let a = analysed(&s, body).await?;
    let m = s.model.clone();
    let (sop, bytes) = tokio::task::spawn_blocking(move || {
        let m = &*m;
        let id = radfm_dicom::sr::SrIdentity::derived(
            &[&a.sop_instance_uid, &m.algorithm().sha256, "v1/sr"],
            SystemTime::now(),
        );
        let sr = sr_bytes(m, &[&a], &id)?;
        Ok::<_, InputError>((a.sop_instance_uid, sr))
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))??;
    tracing::info!(sop = %hash_uid(&sop), ms = t0.elapsed().as_millis() as u64, "SR written");
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/dicom"),
        )],
        Body::from(bytes),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::batch_target;

    #[test]
    fn idle_workers_share_what_is_waiting_and_a_lone_one_fills_its_batch() {
        // 6 waiting, 2 idle: 3 each, no waiting for more
        assert_eq!(batch_target(4, 2, 6), (3, false));
        // 9 waiting, 2 idle: capped at the batch
        assert_eq!(batch_target(4, 2, 9), (4, false));
        // 1 waiting, 3 idle: just it
        assert_eq!(batch_target(4, 3, 1), (1, false));
        // every other worker busy: a full batch, waiting for it
        assert_eq!(batch_target(4, 1, 1), (4, true));
        assert_eq!(batch_target(8, 1, 3), (8, true));
    }
}

//! The server's endpoints and errors, on the router (no socket), and its
//! graceful shutdown on a real socket.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use radfm_serve::server::{router, Config};
use tower::ServiceExt;

use crate::common::{image, no_pixels, Fake};

fn config() -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        token: None,
        max_body: 64 * 1024,
        workers: 2,
        queue: 8,
        insecure_no_auth: false,
        batch: 1,
        batch_wait: std::time::Duration::from_millis(5),
    }
}

fn app(cfg: &Config) -> Router {
    router(Arc::new(Fake::new(Duration::ZERO)), cfg)
}

async fn send(app: &Router, req: Request<Body>) -> (StatusCode, Vec<u8>, header::HeaderMap) {
    let r = app.clone().oneshot(req).await.unwrap();
    let (parts, body) = r.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes().to_vec();
    (parts.status, bytes, parts.headers)
}

fn post(path: &str, ct: Option<&str>, body: Vec<u8>) -> Request<Body> {
    let mut b = Request::builder().method("POST").uri(path);
    if let Some(ct) = ct {
        b = b.header(header::CONTENT_TYPE, ct);
    }
    b.body(Body::from(body)).unwrap()
}

fn get(path: &str) -> Request<Body> {
    Request::builder().uri(path).body(Body::empty()).unwrap()
}

fn json(b: &[u8]) -> serde_json::Value {
    serde_json::from_slice(b).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(b)))
}

#[tokio::test]
async fn predict_answers_scores_and_the_model_and_sr_answers_dicom() {
    let app = app(&config());
    let (st, body, _) = send(&app, get("/healthz")).await;
    assert_eq!((st, body.as_slice()), (StatusCode::OK, b"ok\n".as_slice()));
    let (st, body, _) = send(&app, get("/v1/model")).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(json(&body)["name"], "fake");

    let (st, body, _) = send(
        &app,
        post(
            "/v1/predict",
            Some("application/dicom"),
            image("2.25.77", 40, 30),
        ),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let v = json(&body);
    assert_eq!(v["sop_instance_uid"], "2.25.77");
    assert_eq!(v["scores"]["Cardiomegaly"], 0.4);
    assert_eq!(v["scores"]["Pleural Effusion"], 0.3);
    assert_eq!(
        v["model"],
        serde_json::json!({"name": "fake", "version": "1", "sha256": "cd".repeat(32)})
    );
    // a content type with parameters is still application/dicom
    let (st, body, h) = send(
        &app,
        post(
            "/v1/sr",
            Some("application/dicom; transfer-syntax=1.2.840.10008.1.2.1"),
            image("2.25.78", 60, 20),
        ),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(h[header::CONTENT_TYPE], "application/dicom");
    let sr = radfm_dicom::read::parse(&body).unwrap();
    let root = radfm_dicom::sr::read::content(&sr.dataset).unwrap();
    // the SR names the source image and calls Cardiomegaly present (0.6 >= 0.5)
    let text = format!("{root:?}");
    assert!(text.contains("2.25.78"), "{text}");
    let info = radfm_dicom::DicomInfo::from_dataset(&sr.dataset);
    assert_eq!(info.modality.as_deref(), Some("SR"));
    assert_eq!(info.patient_id.as_deref(), Some("SYN0001"));
}

#[tokio::test]
async fn bad_input_is_a_4xx_with_a_reason_and_the_server_stays_healthy() {
    let app = app(&config());
    let good = image("2.25.5", 10, 10);
    let cases: Vec<(&str, Option<&str>, Vec<u8>, StatusCode)> = vec![
        (
            "empty",
            Some("application/dicom"),
            vec![],
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "random bytes",
            Some("application/dicom"),
            (0..4000u32)
                .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
                .collect(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "truncated",
            Some("application/dicom"),
            good[..good.len() * 2 / 3].to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "a text file",
            Some("application/dicom"),
            b"FINDINGS: none.\n".to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "DICOM without pixels",
            Some("application/dicom"),
            no_pixels("2.25.6"),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "no content type",
            None,
            good.clone(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "JSON",
            Some("application/json"),
            b"{}".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "over the limit",
            Some("application/dicom"),
            vec![0u8; 64 * 1024 + 1],
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ];
    for path in ["/v1/predict", "/v1/sr"] {
        for (what, ct, body, want) in &cases {
            let (st, b, _) = send(&app, post(path, *ct, body.clone())).await;
            assert_eq!(st, *want, "{path} {what}: {}", String::from_utf8_lossy(&b));
            let reason = json(&b)["error"].as_str().unwrap().to_string();
            assert!(!reason.is_empty(), "{what}");
        }
        // after all that, a good request still works
        let (st, _, _) = send(&app, post(path, Some("application/dicom"), good.clone())).await;
        assert_eq!(st, StatusCode::OK);
    }
    let (st, _, _) = send(&app, get("/nowhere")).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (_, m, _) = send(&app, get("/metrics")).await;
    let m = String::from_utf8(m).unwrap();
    assert!(
        m.contains("radfm_errors_total{kind=\"payload_too_large\"} 2"),
        "{m}"
    );
    assert!(
        m.contains("radfm_errors_total{kind=\"unsupported_media_type\"} 4"),
        "{m}"
    );
    assert!(
        m.contains("radfm_errors_total{kind=\"not_an_image\"} 2"),
        "{m}"
    );
    assert!(
        m.contains("radfm_requests_total{route=\"/v1/predict\",status=\"200\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("radfm_request_duration_seconds_count{route=\"/v1/sr\"} 9"),
        "{m}"
    );
}

#[tokio::test]
async fn a_stream_longer_than_its_declared_length_is_still_bounded() {
    // no Content-Length: the limit holds while reading
    let app = app(&config());
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..20).map(|_| Ok(vec![1u8; 8192])).collect();
    let body = Body::from_stream(futures_util::stream::iter(chunks));
    let req = Request::builder()
        .method("POST")
        .uri("/v1/predict")
        .header(header::CONTENT_TYPE, "application/dicom")
        .body(body)
        .unwrap();
    let (st, _, _) = send(&app, req).await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn a_token_guards_every_endpoint_but_healthz() {
    let cfg = Config {
        token: Some("s3cret-token\n".into()),
        ..config()
    };
    let app = app(&cfg);
    let (st, _, _) = send(&app, get("/healthz")).await;
    assert_eq!(st, StatusCode::OK);
    for path in ["/v1/model", "/metrics"] {
        let (st, _, h) = send(&app, get(path)).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(h[header::WWW_AUTHENTICATE], "Bearer");
        let wrong = Request::builder()
            .uri(path)
            .header(header::AUTHORIZATION, "Bearer s3cret-tokem")
            .body(Body::empty())
            .unwrap();
        assert_eq!(send(&app, wrong).await.0, StatusCode::UNAUTHORIZED);
        let right = Request::builder()
            .uri(path)
            .header(header::AUTHORIZATION, "Bearer s3cret-token")
            .body(Body::empty())
            .unwrap();
        assert_eq!(send(&app, right).await.0, StatusCode::OK, "{path}");
    }
    // unauthenticated, the body is not even looked at
    let (st, b, _) = send(&app, post("/v1/predict", Some("application/dicom"), vec![])).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert!(!String::from_utf8_lossy(&b).contains("s3cret"));
}

#[test]
fn a_non_loopback_address_needs_a_token_or_an_explicit_waiver() {
    let open = Config {
        listen: "0.0.0.0:8080".parse().unwrap(),
        ..config()
    };
    let e = open.check().unwrap_err().to_string();
    assert!(e.contains("0.0.0.0:8080") && e.contains("token"), "{e}");
    assert!(Config {
        token: Some("t".into()),
        ..open.clone()
    }
    .check()
    .is_ok());
    assert!(Config {
        insecure_no_auth: true,
        ..open.clone()
    }
    .check()
    .is_ok());
    assert!(config().check().is_ok());
    assert!(Config {
        token: Some("  \n".into()),
        ..config()
    }
    .check()
    .is_err());
}

#[tokio::test]
async fn a_full_queue_answers_503_with_retry_after_and_recovers() {
    let cfg = Config {
        workers: 1,
        queue: 1,
        ..config()
    };
    let app = router(Arc::new(Fake::new(Duration::from_millis(300))), &cfg);
    let body = image("2.25.9", 10, 10);
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (app, body) = (app.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let r = app
                .oneshot(post("/v1/predict", Some("application/dicom"), body))
                .await
                .unwrap();
            (r.status(), r.headers().get(header::RETRY_AFTER).cloned())
        }));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut ok = 0;
    let mut busy = 0;
    for t in tasks {
        let (st, retry) = t.await.unwrap();
        match st {
            StatusCode::OK => ok += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(retry.unwrap(), "1");
                busy += 1;
            }
            other => panic!("{other}"),
        }
    }
    // one runs, one waits, two are turned away
    assert_eq!((ok, busy), (2, 2));
    let (st, _, _) = send(&app, post("/v1/predict", Some("application/dicom"), body)).await;
    assert_eq!(st, StatusCode::OK);
}

#[tokio::test]
async fn shutdown_finishes_the_request_in_flight() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = router(Arc::new(Fake::new(Duration::from_millis(500))), &config());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(radfm_serve::server::serve(listener, app, async {
        let _ = stop_rx.await;
    }));
    let body = image("2.25.10", 10, 10);
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/dicom\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&body).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // the signal arrives while the model is still working
    stop_tx.send(()).unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).await.unwrap();
    let resp = String::from_utf8_lossy(&resp);
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.contains("\"sop_instance_uid\":\"2.25.10\""), "{resp}");
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("the server stops once the request is done")
        .unwrap()
        .unwrap();
    // and no longer accepts
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn batching_workers_answer_every_request_with_its_own_scores() {
    let cfg = Config {
        workers: 2,
        batch: 4,
        ..config()
    };
    let app = router(Arc::new(Fake::new(Duration::from_millis(50))), &cfg);
    let mut tasks = Vec::new();
    for k in 0..10u16 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let body = if k == 3 {
                b"not dicom".to_vec()
            } else {
                image(&format!("2.25.{}", 500 + k), 10 + k, 20)
            };
            let r = app
                .oneshot(post("/v1/predict", Some("application/dicom"), body))
                .await
                .unwrap();
            let st = r.status();
            let b = r.into_body().collect().await.unwrap().to_bytes();
            (k, st, b)
        }));
    }
    for t in tasks {
        let (k, st, b) = t.await.unwrap();
        if k == 3 {
            // a bad file in a batch fails alone
            assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
            continue;
        }
        assert_eq!(st, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
        let v = json(&b);
        assert_eq!(v["sop_instance_uid"], format!("2.25.{}", 500 + k));
        assert_eq!(v["scores"]["Cardiomegaly"], f64::from(10 + k) / 100.0);
    }
    let (st, _, _) = send(
        &app,
        post(
            "/v1/sr",
            Some("application/dicom"),
            image("2.25.99", 30, 30),
        ),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_batcher_waits_for_its_batch_to_fill_and_an_idle_one_does_not() {
    // one worker: the others (none) are busy, so the batch waits to fill,
    // and goes as soon as it is full rather than at the deadline
    let fake = Arc::new(Fake::new(Duration::ZERO));
    let cfg = Config {
        workers: 1,
        batch: 4,
        batch_wait: Duration::from_millis(1500),
        ..config()
    };
    let app = router(fake.clone(), &cfg);
    let start = std::time::Instant::now();
    let mut tasks = Vec::new();
    for k in 0..4u16 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let body = image(&format!("2.25.{}", 700 + k), 10 + k, 20);
            app.oneshot(post("/v1/predict", Some("application/dicom"), body))
                .await
                .unwrap()
                .status()
        }));
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(*fake.batches.lock().unwrap(), vec![4]);
    assert!(
        start.elapsed() < Duration::from_millis(1200),
        "{:?}",
        start.elapsed()
    );

    // two idle workers: a lone request waits for nothing
    let fake = Arc::new(Fake::new(Duration::ZERO));
    let cfg = Config {
        workers: 2,
        batch: 4,
        batch_wait: Duration::from_secs(3),
        ..config()
    };
    let app = router(fake.clone(), &cfg);
    let start = std::time::Instant::now();
    let (st, _, _) = send(
        &app,
        post(
            "/v1/predict",
            Some("application/dicom"),
            image("2.25.800", 10, 20),
        ),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(*fake.batches.lock().unwrap(), vec![1]);
}

#[test]
fn pacs_sync_scores_images_skips_structured_reports_and_names_bad_instances() {
    use radfm_serve::{analyse, analyse_unless_sr, sr_bytes};
    let fake = Fake::new(Duration::ZERO);
    let img = image("2.25.900", 12, 34);
    let a = analyse_unless_sr(&fake, &img)
        .unwrap()
        .expect("an image is scored");
    assert_eq!(a.sop_instance_uid, "2.25.900");
    assert_eq!(a.scores, analyse(&fake, &img).unwrap().scores);
    let id = radfm_dicom::sr::SrIdentity::derived(
        &["2.25.1001", "test"],
        std::time::SystemTime::UNIX_EPOCH,
    );
    let sr = sr_bytes(&fake, &[&a], &id).unwrap();
    // an SR of the study is not an image to score, nor an error
    assert!(analyse_unless_sr(&fake, &sr).unwrap().is_none());
    assert!(analyse(&fake, &sr).is_err());
    // anything else that cannot be scored is still an error with its reason
    assert!(analyse_unless_sr(&fake, b"not dicom").is_err());
    assert!(analyse_unless_sr(&fake, &no_pixels("2.25.901")).is_err());
}

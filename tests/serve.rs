//! The HTTP endpoint of a running engine: every route, every error case, many clients at
//! once, stalled clients, and a stop that ends it; predictions checked against the stored
//! model versions they name.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::*;

/// One request on a connection of its own; the status and the JSON body.
fn http(port: u16, method: &str, target: &str, body: &[u8]) -> (u16, Value) {
    let (status, body) = raw(
        port,
        &[
            format!(
                "{method} {target} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )
            .as_bytes(),
            body,
        ]
        .concat(),
    );
    let json = serde_json::from_slice(&body).unwrap_or_else(|e| {
        panic!(
            "{method} {target}: not JSON ({e}): {:?}",
            String::from_utf8_lossy(&body)
        )
    });
    (status, json)
}

/// Sends `request` as is; the status and the body of the response.
fn raw(port: u16, request: &[u8]) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    stream.write_all(request).expect("sends");
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .expect("a response in time");
    let text = String::from_utf8_lossy(&response);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text:?}"));
    let at = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("headers end")
        + 4;
    (status, response[at..].to_vec())
}

/// A paced engine (event time follows the clock: a 1 s candle closes every second) with
/// its endpoint on a free port, writing to `db`; waits until every symbol has a fitted model
/// that has made predictions.
#[allow(clippy::zombie_processes)] // The caller waits for the child it gets back.
fn engine(dir: &Path, db: &str) -> (Child, u16) {
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let mut child = spawn_tickflow(
        dir,
        &[
            "run",
            "--rate",
            "4000",
            "--events",
            "100000000",
            "--symbols",
            "BTCUSDT,ETHUSDT,SOLUSDT",
            "--windows",
            "1s",
            "--lateness",
            "200ms",
            "--sink",
            db,
            "--serve",
            &address,
            "--quiet",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("ends");
            panic!(
                "no fitted models after 90 s: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            let (_, info) = http(port, "GET", "/model/info", b"");
            let fitted = info["models"].as_array().map(|models| {
                models
                    .iter()
                    .filter(|m| m["status"] == "ok" && m["predictions"].as_u64() >= Some(3))
                    .count()
            });
            if fitted == Some(3) {
                return (child, port);
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn features(open: f64) -> Value {
    json!({"open": open, "high": open * 1.001, "low": open * 0.999, "volume": 3.5})
}

#[test]
fn every_route_answers_and_every_bad_request_is_a_4xx_naming_what_is_wrong() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let (child, port) = engine(dir, "sqlite:serve.db");

    let (status, health) = http(port, "GET", "/health", b"");
    assert_eq!(status, 200);
    assert_eq!(health["status"], "ok");
    assert!(health["watermark_ms"].as_u64().is_some(), "{health}");
    assert!(
        health["lag_ms"].as_u64().is_some_and(|lag| lag < 60_000),
        "{health}"
    );
    assert!(
        health["uptime_s"].as_f64().is_some_and(|s| s > 0.0),
        "{health}"
    );
    assert_eq!(health["models"], 3);

    let (status, info) = http(port, "GET", "/model/info?symbol=ETHUSDT", b"");
    assert_eq!(status, 200);
    assert_eq!(info["symbol"], "ETHUSDT");
    assert_eq!(info["features"], json!(["open", "high", "low", "volume"]));
    for key in [
        "coefficients",
        "intercept",
        "n",
        "rmse",
        "r2",
        "version",
        "baseline_rmse",
    ] {
        assert!(!info[key].is_null(), "{key}: {info}");
    }

    let mut body = features(2300.0);
    body["symbol"] = json!("ETHUSDT");
    let (status, predicted) = http(port, "POST", "/predict", body.to_string().as_bytes());
    assert_eq!(status, 200, "{predicted}");
    assert_eq!(predicted["symbol"], "ETHUSDT");
    assert!(predicted["predicted_close"]
        .as_f64()
        .is_some_and(f64::is_finite));
    assert!(predicted["model_version"].as_u64().is_some());

    let batch = json!({"data": [
        {"symbol": "BTCUSDT", "open": 43000.0, "high": 43050.0, "low": 42990.0, "volume": 1.25},
        {"symbol": "SOLUSDT", "open": 101.0, "high": 101.5, "low": 100.5, "volume": 40},
    ]});
    let (status, answer) = http(port, "POST", "/batch_predict", batch.to_string().as_bytes());
    assert_eq!(status, 200, "{answer}");
    let predictions = answer["predictions"].as_array().expect("array");
    assert_eq!(predictions.len(), 2);
    assert_eq!(predictions[1]["symbol"], "SOLUSDT");

    let (status, reload) = http(port, "POST", "/model/reload", b"");
    assert_eq!(status, 200);
    assert_eq!(reload["models"], 3);

    let too_many: Vec<Value> = (0..10_001)
        .map(|_| json!({"symbol": "BTCUSDT", "open": 1, "high": 1, "low": 1, "volume": 1}))
        .collect();
    let too_many = json!({ "data": too_many }).to_string();
    let cases: Vec<(&str, &str, String, u16, &str)> = vec![
        (
            "POST",
            "/predict",
            r#"{"symbol":"BTCUSDT","open":1,"high":2,"low":0.5}"#.into(),
            422,
            "volume: missing",
        ),
        (
            "POST",
            "/predict",
            r#"{"symbol":"BTCUSDT","open":1,"high":"2","low":0.5,"volume":1}"#.into(),
            422,
            "high: expected a number, got a string",
        ),
        (
            "POST",
            "/predict",
            r#"{"symbol":"BTCUSDT","open":null,"high":2,"low":0.5,"volume":1}"#.into(),
            422,
            "open: expected a number, got null",
        ),
        (
            "POST",
            "/predict",
            r#"{"symbol":"BTCUSDT","open":1e999,"high":2,"low":0.5,"volume":1}"#.into(),
            400,
            "number out of range",
        ),
        (
            "POST",
            "/predict",
            r#"{"symbol":"DOGEUSDT","open":1,"high":2,"low":0.5,"volume":1}"#.into(),
            404,
            "DOGEUSDT",
        ),
        (
            "POST",
            "/predict",
            r#"{"symbol":7,"open":1,"high":2,"low":0.5,"volume":1}"#.into(),
            422,
            "symbol: expected a string",
        ),
        (
            "POST",
            "/predict",
            r#"{"open":1,"high":2,"low":0.5,"volume":1}"#.into(),
            422,
            "symbol: required",
        ),
        (
            "POST",
            "/predict",
            r#"{"open":1,"#.into(),
            400,
            "malformed JSON",
        ),
        (
            "POST",
            "/predict",
            "[1, 2]".into(),
            422,
            "expected a JSON object, got an array",
        ),
        ("POST", "/predict", String::new(), 400, "empty body"),
        (
            "POST",
            "/batch_predict",
            r#"{"data":[]}"#.into(),
            422,
            "data: empty",
        ),
        (
            "POST",
            "/batch_predict",
            r#"{"rows":[]}"#.into(),
            422,
            "data: missing",
        ),
        (
            "POST",
            "/batch_predict",
            r#"{"data":{}}"#.into(),
            422,
            "data: expected an array",
        ),
        (
            "POST",
            "/batch_predict",
            r#"{"data":[{"symbol":"BTCUSDT","open":1,"high":1,"low":1,"volume":1},5]}"#.into(),
            422,
            "data[1]: expected an object",
        ),
        (
            "POST",
            "/batch_predict",
            r#"{"data":[{"symbol":"BTCUSDT","open":1,"high":1,"low":1}]}"#.into(),
            422,
            "data[0].volume: missing",
        ),
        ("POST", "/batch_predict", too_many, 413, "at most 10000"),
        ("GET", "/predict", String::new(), 405, "takes POST"),
        ("POST", "/health", String::new(), 405, "takes GET"),
        ("GET", "/model/info?symbol=NOPE", String::new(), 404, "NOPE"),
        (
            "GET",
            "/model/info?symbol=%FF",
            String::new(),
            400,
            "percent-encoded",
        ),
        ("GET", "/admin", String::new(), 404, "no route /admin"),
    ];
    for (method, target, body, want, says) in &cases {
        let (status, answer) = http(port, method, target, body.as_bytes());
        assert_eq!(status, *want, "{method} {target} {:.80}: {answer}", body);
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(says),
            "{method} {target}: {error:?} should say {says:?}"
        );
    }

    // A body declared larger than the limit is refused before it is sent.
    let (status, body) = raw(
        port,
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("at most 1048576"));
    // A request line or headers hyper cannot read: a 4xx, never a 5xx.
    let (status, _) = raw(port, b"GARBAGE\r\n\r\n");
    assert!((400..500).contains(&status), "{status}");
    let stop = interrupt(child);
    assert!(
        stop.status.success(),
        "{}",
        String::from_utf8_lossy(&stop.stderr)
    );
}

#[test]
fn concurrent_clients_get_predictions_equal_to_the_stored_version_they_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let (child, port) = engine(dir, "sqlite:concurrent.db");
    // A client that sends half its headers and stalls holds one connection, nothing more.
    let mut stalled = TcpStream::connect(("127.0.0.1", port)).expect("connects");
    stalled
        .write_all(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Le")
        .expect("sends");
    let symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT"];
    let clients: Vec<_> = (0..8)
        .map(|client| {
            std::thread::spawn(move || {
                let mut answered = Vec::new();
                for i in 0..150 {
                    let symbol = symbols[(client + i) % 3];
                    let open = 100.0 + (client * 150 + i) as f64;
                    let mut body = features(open);
                    body["symbol"] = json!(symbol);
                    if i % 10 == 9 {
                        // Every tenth request is bad: it must not disturb the others.
                        let (status, answer) = http(
                            port,
                            "POST",
                            "/predict",
                            br#"{"symbol":"BTCUSDT","open":"x"}"#,
                        );
                        assert_eq!(status, 422, "{answer}");
                        continue;
                    }
                    let (status, answer) =
                        http(port, "POST", "/predict", body.to_string().as_bytes());
                    assert_eq!(status, 200, "{answer}");
                    answered.push((body, answer));
                }
                answered
            })
        })
        .collect();
    let answered: Vec<(Value, Value)> = clients
        .into_iter()
        .flat_map(|c| c.join().expect("client thread"))
        .collect();
    assert_eq!(answered.len(), 8 * 135);
    // The stalled client was cut off after the header timeout; the server still answers.
    stalled
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    let mut rest = Vec::new();
    let cut = stalled.read_to_end(&mut rest);
    assert!(
        cut.is_ok(),
        "the stalled connection was not closed: {cut:?}"
    );
    let (status, _) = http(port, "GET", "/health", b"");
    assert_eq!(status, 200);
    // Ctrl-C: the run commits and ends, the endpoint with it.
    let stop = interrupt(child);
    assert!(
        stop.status.success(),
        "{}",
        String::from_utf8_lossy(&stop.stderr)
    );
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "still listening"
    );
    // Each answer is β·x of the stored version it names (committed by the stop).
    let db = path(dir, "concurrent.db");
    let mut checked = 0;
    for (body, answer) in &answered {
        let symbol = answer["symbol"].as_str().expect("symbol");
        let version = answer["model_version"].as_u64().expect("version");
        let stored = rows(
            &db,
            &format!(
                "SELECT coefficients, intercept FROM models WHERE symbol = '{symbol}' AND version = {version}"
            ),
        );
        let Some(row) = stored.first() else {
            // A version made after the last commit before the stop is not stored.
            continue;
        };
        let coefficients: Vec<f64> = serde_json::from_str(&row[0]).expect("json");
        let intercept: f64 = row[1].parse().expect("intercept");
        let x = ["open", "high", "low", "volume"].map(|f| body[f].as_f64().expect("feature"));
        let want = intercept + coefficients.iter().zip(x).map(|(b, v)| b * v).sum::<f64>();
        let got = answer["predicted_close"].as_f64().expect("number");
        assert!(
            (got - want).abs() <= 1e-12 * want.abs().max(1.0),
            "{symbol} v{version}: {got} vs β·x {want}"
        );
        checked += 1;
    }
    assert!(
        checked >= answered.len() / 2,
        "only {checked} of {} answers had a stored version",
        answered.len()
    );
}

#[test]
fn an_address_that_cannot_be_served_is_an_error_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
    let address = taken.local_addr().expect("address").to_string();
    for spec in [address.as_str(), "not-an-address", "127.0.0.1:99999"] {
        let out = tickflow_unchecked(
            dir,
            &[
                "run", "--events", "10", "--rate", "0", "--sink", "none", "--serve", spec,
            ],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{spec}: {stderr}");
        assert!(
            stderr.contains(&format!("--serve {spec}")),
            "{spec}: {stderr}"
        );
    }
}

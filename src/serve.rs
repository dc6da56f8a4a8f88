//! The HTTP endpoint (`--serve ADDR`): the prediction API users already call (FastAPI
//! style: `/health`, `/model/info`, `/predict`, `/batch_predict`, `/model/reload`), served
//! from the models the dataflow maintains.
//!
//! ```text
//!  ModelEvaluate ─▶ models rows ─Exchange(→ worker 0)─▶ Published::publish ─▶ ArcSwap<Models>
//!                                                                              │ load()
//!  clients ─▶ hyper (one thread, current-thread tokio runtime) ─▶ route() ─────┘
//! ```
//!
//! The dataflow never waits for the endpoint: publishing swaps in a new immutable map
//! (`arc-swap`), and a request reads whichever map is current, so every answer comes from one
//! consistent set of versions. Requests are bounded (body size, batch size, header and
//! body read time, concurrent connections); anything wrong with one is a 4xx with a JSON
//! `{"error": "..."}` that names the field, never a 5xx.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use arc_swap::ArcSwap;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Map, Value};

use tickflow_dataflows::regression::ModelRow;
use tickflow_operators::source::{now_ms, Counters};

/// Largest request body accepted, bytes.
pub const MAX_BODY: usize = 1 << 20;
/// Most rows in one `/batch_predict`.
pub const MAX_BATCH: usize = 10_000;
/// Connections served at once; more wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 1024;
/// How long a client may take to send its headers, and then its body.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a stop waits for requests in flight.
const DRAIN: Duration = Duration::from_secs(2);

/// The newest version of each symbol's model.
pub type Models = BTreeMap<String, Arc<ModelRow>>;

/// Model versions as the dataflow publishes them and requests read them, without locks.
#[derive(Debug, Default)]
pub struct Published {
    models: ArcSwap<Models>,
}

impl Published {
    /// Takes the newest version of each symbol in `rows` (rows of one time, or later times
    /// than those published before).
    pub fn publish(&self, rows: &[ModelRow]) {
        if rows.is_empty() {
            return;
        }
        self.models.rcu(|models| {
            let mut models = Models::clone(models);
            for row in rows {
                let newer = models
                    .get(&row.symbol)
                    .is_none_or(|known| known.version <= row.version);
                if newer {
                    models.insert(row.symbol.clone(), Arc::new(row.clone()));
                }
            }
            models
        });
    }

    /// The models now.
    pub fn current(&self) -> Arc<Models> {
        self.models.load_full()
    }
}

/// What the routes read.
#[derive(Debug)]
pub struct State {
    /// The models.
    pub models: Arc<Published>,
    /// The sources' counters of this process (records, watermark).
    pub counters: Arc<Counters>,
    /// When the run started.
    pub started: Instant,
}

/// A route's answer: status and JSON body.
#[derive(Debug, PartialEq)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

impl Answer {
    fn ok(body: Value) -> Answer {
        Answer {
            status: StatusCode::OK,
            body,
        }
    }

    fn error(status: StatusCode, message: impl Into<String>) -> Answer {
        Answer {
            status,
            body: json!({ "error": message.into() }),
        }
    }
}

/// The routes: `method` and `path` with its `query`, and the body (already read and within
/// [`MAX_BODY`]).
pub fn route(state: &State, method: &Method, path: &str, query: &str, body: &[u8]) -> Answer {
    let allowed = match path {
        "/health" | "/model/info" => Method::GET,
        "/predict" | "/batch_predict" | "/model/reload" => Method::POST,
        _ => {
            return Answer::error(
                StatusCode::NOT_FOUND,
                format!("no route {path} (routes: GET /health, GET /model/info, POST /predict, POST /batch_predict, POST /model/reload)"),
            )
        }
    };
    if *method != allowed && !(allowed == Method::GET && *method == Method::HEAD) {
        return Answer::error(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{path} takes {allowed}, not {method}"),
        );
    }
    let models = state.models.current();
    match path {
        "/health" => health(state, &models),
        "/model/info" => model_info(&models, query),
        "/model/reload" => Answer::ok(json!({
            "status": "ok",
            "source": "live",
            "models": models.len(),
            "detail": "the engine serves each symbol's newest version as it is made",
        })),
        _ => match parse_json(body) {
            Err(answer) => answer,
            Ok(request) if path == "/predict" => match predict(&models, &request, "") {
                Ok(prediction) => Answer::ok(prediction),
                Err(answer) => answer,
            },
            Ok(request) => batch_predict(&models, &request),
        },
    }
}

fn health(state: &State, models: &Models) -> Answer {
    let watermark = state
        .counters
        .watermark()
        .filter(|&w| w > 0 && w < u64::MAX);
    Answer::ok(json!({
        "status": "ok",
        "uptime_s": state.started.elapsed().as_secs_f64(),
        "events": state.counters.records.load(Ordering::Relaxed),
        "rejected": state.counters.rejected.load(Ordering::Relaxed),
        "watermark_ms": watermark,
        "lag_ms": watermark.map(|w| now_ms().saturating_sub(w)),
        "models": models.len(),
    }))
}

/// A model as `/model/info` shows it.
fn info(model: &ModelRow) -> Value {
    json!({
        "symbol": model.symbol,
        "version": model.version,
        "updated_ms": model.updated_ms,
        "window_ms": model.window_ms,
        "horizon": model.horizon,
        "features": model.features,
        "coefficients": model.coefficients,
        "intercept": model.intercept,
        "n": model.n,
        "rmse": model.rmse,
        "r2": model.r2,
        "baseline_rmse": model.baseline_rmse,
        "predictions": model.predictions,
        "in_sample_rmse": model.in_sample_rmse,
        "condition": model.condition,
        "status": model.status,
    })
}

fn model_info(models: &Models, query: &str) -> Answer {
    match query_param(query, "symbol") {
        Ok(Some(symbol)) => match models.get(&symbol) {
            Some(model) => Answer::ok(info(model)),
            None => unknown_symbol(models, &symbol),
        },
        Ok(None) if models.len() == 1 => {
            Answer::ok(info(models.values().next().expect("one model")))
        }
        Ok(None) => {
            Answer::ok(json!({ "models": models.values().map(|m| info(m)).collect::<Vec<_>>() }))
        }
        Err(answer) => answer,
    }
}

fn unknown_symbol(models: &Models, symbol: &str) -> Answer {
    let known: Vec<&str> = models.keys().map(String::as_str).take(20).collect();
    Answer::error(
        StatusCode::NOT_FOUND,
        format!(
            "symbol {symbol:?}: no model (models: {})",
            if known.is_empty() {
                "none yet".to_owned()
            } else {
                known.join(", ")
            }
        ),
    )
}

/// The value of `name` in a URL query (`a=1&b=2`, percent-decoded); an error for a value
/// that is not valid UTF-8 once decoded.
fn query_param(query: &str, name: &str) -> Result<Option<String>, Answer> {
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key == name {
            return percent_decode(value).map(Some).ok_or_else(|| {
                Answer::error(
                    StatusCode::BAD_REQUEST,
                    format!("query parameter {name}: not valid percent-encoded UTF-8"),
                )
            });
        }
    }
    Ok(None)
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn parse_json(body: &[u8]) -> Result<Map<String, Value>, Answer> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Answer::error(
            StatusCode::BAD_REQUEST,
            "empty body: expected a JSON object",
        ));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(other) => Err(Answer::error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("body: expected a JSON object, got {}", kind(&other)),
        )),
        Err(e) => Err(Answer::error(
            StatusCode::BAD_REQUEST,
            format!("body: malformed JSON: {e}"),
        )),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn invalid(message: String) -> Answer {
    Answer::error(StatusCode::UNPROCESSABLE_ENTITY, message)
}

/// One prediction for the fields of `request` (`at` prefixes field names in errors).
fn predict(models: &Models, request: &Map<String, Value>, at: &str) -> Result<Value, Answer> {
    let model = match request.get("symbol") {
        Some(Value::String(symbol)) => models
            .get(symbol)
            .ok_or_else(|| unknown_symbol(models, symbol))?,
        Some(other) => {
            return Err(invalid(format!(
                "{at}symbol: expected a string, got {}",
                kind(other)
            )))
        }
        None if models.len() == 1 => models.values().next().expect("one model"),
        None if models.is_empty() => {
            return Err(Answer::error(
                StatusCode::NOT_FOUND,
                "no model yet: the engine has not seen enough candles",
            ))
        }
        None => {
            let known: Vec<&str> = models.keys().map(String::as_str).take(20).collect();
            return Err(invalid(format!(
                "{at}symbol: required when there are models of several symbols ({})",
                known.join(", ")
            )));
        }
    };
    let mut x = Vec::with_capacity(model.features.len());
    for name in &model.features {
        let value = match request.get(name) {
            None => {
                return Err(invalid(format!(
                    "{at}{name}: missing (the model's features are {})",
                    model.features.join(", ")
                )))
            }
            Some(Value::Number(n)) => n.as_f64().filter(|v| v.is_finite()),
            Some(other) => {
                return Err(invalid(format!(
                    "{at}{name}: expected a number, got {}",
                    kind(other)
                )))
            }
        };
        match value {
            Some(v) => x.push(v),
            None => return Err(invalid(format!("{at}{name}: not a finite number"))),
        }
    }
    let (Some(intercept), true) = (model.intercept, model.coefficients.len() == x.len()) else {
        return Err(Answer::error(
            StatusCode::CONFLICT,
            format!(
                "symbol {:?}: version {} has no fit (status {}, {} samples)",
                model.symbol, model.version, model.status, model.n
            ),
        ));
    };
    let predicted = intercept
        + model
            .coefficients
            .iter()
            .zip(&x)
            .map(|(b, v)| b * v)
            .sum::<f64>();
    if !predicted.is_finite() {
        return Err(invalid(format!(
            "{at}features: the prediction overflows (values too large for the model)"
        )));
    }
    Ok(json!({
        "predicted_close": predicted,
        "model_version": model.version,
        "symbol": model.symbol,
    }))
}

fn batch_predict(models: &Models, request: &Map<String, Value>) -> Answer {
    let rows = match request.get("data") {
        Some(Value::Array(rows)) => rows,
        Some(other) => return invalid(format!("data: expected an array, got {}", kind(other))),
        None => return invalid("data: missing (expected {\"data\": [{...}, ...]})".to_owned()),
    };
    if rows.is_empty() {
        return invalid("data: empty (give 1 to 10000 rows)".to_owned());
    }
    if rows.len() > MAX_BATCH {
        return Answer::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("data: {} rows, at most {MAX_BATCH}", rows.len()),
        );
    }
    let mut predictions = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        let Value::Object(row) = row else {
            return invalid(format!("data[{i}]: expected an object, got {}", kind(row)));
        };
        match predict(models, row, &format!("data[{i}].")) {
            Ok(prediction) => predictions.push(prediction),
            Err(answer) => return answer,
        }
    }
    Answer::ok(json!({ "predictions": predictions }))
}

/// The endpoint's thread; [`Server::stop`] ends it.
#[derive(Debug)]
pub struct Server {
    /// The address it listens on.
    pub address: SocketAddr,
    stop: Option<tokio::sync::watch::Sender<bool>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Listens on `listener` (bound by the caller, so that a bad address fails at start)
    /// on a thread of its own.
    pub fn start(listener: std::net::TcpListener, state: State) -> Result<Server> {
        let address = listener.local_addr().context("--serve: local address")?;
        listener
            .set_nonblocking(true)
            .context("--serve: non-blocking socket")?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .context("--serve: starting the HTTP runtime")?;
        let thread = std::thread::Builder::new()
            .name("tickflow-http".to_owned())
            .spawn(move || runtime.block_on(serve(listener, Arc::new(state), stopped)))
            .context("--serve: starting the HTTP thread")?;
        Ok(Server {
            address,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Stops accepting, lets requests in flight finish (up to 2 s) and joins the thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

async fn serve(
    listener: std::net::TcpListener,
    state: Arc<State>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!("--serve: {e}");
            return;
        }
    };
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => slot,
            _ = stopped.changed() => break,
        };
        let Ok(slot) = slot else { break };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped.changed() => break,
        };
        let Ok((stream, _)) = accepted else {
            // Out of descriptors or a connection reset before accept: try again shortly.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let state = Arc::clone(&state);
        let service = hyper::service::service_fn(move |request| {
            let state = Arc::clone(&state);
            async move { Ok::<_, std::convert::Infallible>(respond(&state, request).await) }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(READ_TIMEOUT)
            .max_buf_size(64 * 1024)
            .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = connection.await;
            drop(slot);
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(DRAIN, graceful.shutdown()).await;
}

/// Reads the body (bounded in size and time) and answers.
async fn respond(state: &State, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let answer = if declared.is_some_and(|n| n > MAX_BODY as u64) {
        Answer::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body: {} bytes, at most {MAX_BODY}", declared.unwrap_or(0)),
        )
    } else {
        match tokio::time::timeout(READ_TIMEOUT, Limited::new(body, MAX_BODY).collect()).await {
            Err(_) => Answer::error(
                StatusCode::REQUEST_TIMEOUT,
                format!("body: not received within {} s", READ_TIMEOUT.as_secs()),
            ),
            Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Answer::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body: more than {MAX_BODY} bytes"),
            ),
            Ok(Err(e)) => Answer::error(StatusCode::BAD_REQUEST, format!("body: {e}")),
            Ok(Ok(collected)) => route(
                state,
                &parts.method,
                parts.uri.path(),
                parts.uri.query().unwrap_or(""),
                &collected.to_bytes(),
            ),
        }
    };
    let mut response = Response::new(Full::new(Bytes::from(answer.body.to_string())));
    *response.status_mut() = answer.status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if answer.status == StatusCode::METHOD_NOT_ALLOWED {
        let allow = if matches!(parts.uri.path(), "/health" | "/model/info") {
            "GET, HEAD"
        } else {
            "POST"
        };
        headers.insert(ALLOW, HeaderValue::from_static(allow));
    }
    response
}

/// Binds `spec` (`HOST:PORT`); `None` for `off`.
pub fn bind(spec: &str) -> Result<Option<std::net::TcpListener>> {
    if spec == "off" {
        return Ok(None);
    }
    let listener = std::net::TcpListener::bind(spec).with_context(|| {
        format!("--serve {spec}: cannot listen there (use --serve off, or another HOST:PORT)")
    })?;
    Ok(Some(listener))
}

//! `tickflow run`: start timely, wire source → dataflows → sink on every worker, report.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::{Concat, Concatenate, Exchange, Inspect, Probe};
use timely::dataflow::{ProbeHandle, Stream};
use timely::{CommunicationConfig, WorkerConfig};

use tickflow_dataflows::regression::{self, Feature, ModelConfig, ModelSettings};
use tickflow_dataflows::{accounts, candles, market, quality};

use tickflow_operators::file::{FileError, FileSource};
use tickflow_operators::generator::{worker_partitions, GeneratorConfig, DEFAULT_START_MS};
use tickflow_operators::hash::StableHasher;
use tickflow_operators::kafka::{KafkaSource, KafkaSpec};
use tickflow_operators::model::{Candle, Symbol, Trade};
use tickflow_operators::parse::Format;
use tickflow_operators::postgres::{redact, PostgresWriter};
use tickflow_operators::schema::{tables, Row};
use tickflow_operators::sink::{commit_sink, NoneWriter, SinkOptions, SinkStatus, Writer};
use tickflow_operators::sink::{Identity, StoredProgress};
use tickflow_operators::source::{
    now_ms, partitioned_source, Counters, Discover, GeneratedPartition, Horizon, Partition,
    Resumed, SourceConfig, Tally,
};
use tickflow_operators::sqlite::SqliteWriter;
use tickflow_operators::window::{format_duration, parse_duration, Windows};

use crate::cli::{GeneratorArgs, RunArgs};
use crate::config::Settings;

/// Where the endpoint listens unless --serve says otherwise.
const DEFAULT_SERVE: &str = "127.0.0.1:8080";

/// Records a source reads per activation before letting other operators run.
const BUDGET: usize = 4096;

/// Bytes of rejected records in flight to the sink before the sources wait for it.
const REJECT_BACKLOG: u64 = 32 << 20;

/// Where the input comes from, opened before timely starts so errors surface at once.
enum Input {
    File(Arc<FileSource>),
    Generate(GeneratorConfig),
    Kafka {
        source: KafkaSource,
        exit_at_end: bool,
        idle_timeout: Duration,
    },
}

/// Where results go.
#[derive(Clone)]
enum Output {
    Sqlite(String),
    Postgres(String),
    None,
}

impl Output {
    fn parse(spec: &str) -> Result<Output> {
        Ok(match spec {
            "none" => Output::None,
            url if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Output::Postgres(url.to_owned())
            }
            spec => match spec.strip_prefix("sqlite:") {
                Some(path) if !path.is_empty() => Output::Sqlite(path.to_owned()),
                _ => bail!(
                    "--sink {:?}: expected sqlite:PATH, postgres://USER@HOST[:PORT]/DB or none",
                    redact(spec)
                ),
            },
        })
    }

    /// Where an earlier run into this sink left `source`.
    fn stored_progress(&self, source: &str) -> Result<StoredProgress> {
        match self {
            Output::Sqlite(path) => {
                SqliteWriter::stored_progress(path, source).map_err(anyhow::Error::msg)
            }
            Output::Postgres(url) => {
                PostgresWriter::stored_progress(url, source).map_err(anyhow::Error::msg)
            }
            Output::None => Ok(StoredProgress::default()),
        }
    }

    /// Every candle of `window_ms` the sink holds.
    fn stored_candles(&self, window_ms: u64) -> Result<Vec<Candle>> {
        match self {
            Output::Sqlite(path) => SqliteWriter::stored_candles(path, window_ms),
            Output::Postgres(url) => PostgresWriter::stored_candles(url, window_ms),
            Output::None => Ok(Vec::new()),
        }
        .map_err(anyhow::Error::msg)
    }

    /// The identity stored with `source`'s progress, if any.
    fn stored_identity(&self, source: &str) -> Result<Option<Identity>> {
        match self {
            Output::Sqlite(path) => {
                SqliteWriter::stored_identity(path, source).map_err(anyhow::Error::msg)
            }
            Output::Postgres(url) => {
                PostgresWriter::stored_identity(url, source).map_err(anyhow::Error::msg)
            }
            Output::None => Ok(None),
        }
    }

    fn record_identity(&self, source: &str, identity: &Identity) -> Result<()> {
        match self {
            Output::Sqlite(path) => SqliteWriter::record_identity(path, source, identity),
            Output::Postgres(url) => PostgresWriter::record_identity(url, source, identity),
            Output::None => Ok(()),
        }
        .map_err(anyhow::Error::msg)
    }

    /// `--fresh`: forgets `source`'s progress and results.
    fn discard(&self, source: &str) -> Result<()> {
        match self {
            Output::Sqlite(path) => SqliteWriter::discard(path, source),
            Output::Postgres(url) => PostgresWriter::discard(url, source),
            Output::None => Ok(()),
        }
        .map_err(anyhow::Error::msg)
    }

    /// The spec for messages, without any password.
    fn describe(&self) -> String {
        match self {
            Output::Sqlite(path) => format!("sqlite:{path}"),
            Output::Postgres(url) => redact(url),
            Output::None => "none".to_owned(),
        }
    }
}

pub fn run(args: RunArgs) -> Result<()> {
    let RunArgs {
        source,
        sink,
        serve,
        windows,
        granule,
        lateness,
        config,
        dedup_horizon,
        workers,
        processes,
        process,
        hostfile,
        symbol,
        quiet,
        max_lag,
        exit_at_end,
        idle_timeout,
        topic_wait,
        store_trades,
        fresh,
        max_time_jump,
        model_candles,
        model_features,
        model_horizon,
        model_window,
        model_ridge,
        no_model,
        generator,
    } = args;
    let idle_timeout =
        Duration::from_millis(parse_duration(&idle_timeout).context("--idle-timeout")?);
    let topic_wait = Duration::from_millis(parse_duration(&topic_wait).context("--topic-wait")?);
    let windows = Windows::parse(&windows)
        .context("--windows")?
        .with_granule(parse_duration(&granule).context("--granule")?);
    let mut settings = Settings::load(config.as_deref())?;
    if let Some(horizon) = dedup_horizon {
        settings.quality.dedup_horizon = parse_duration(&horizon).context("--dedup-horizon")?;
    }
    let model_flags = ModelFlags {
        candles: model_candles,
        features: model_features,
        horizon: model_horizon,
        window: model_window,
        ridge: model_ridge,
        off: no_model,
    };
    model_flags.apply(&mut settings.model)?;
    let lateness_ms = parse_duration(&lateness).context("--lateness")?;
    let max_lag_ms = parse_duration(&max_lag).context("--max-lag")?;
    let max_time_jump_ms = parse_duration(&max_time_jump).context("--max-time-jump")?;
    let workers = match workers {
        Some(0) => bail!("--workers must be at least 1"),
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let communication = cluster_config(workers, processes, process, hostfile.as_deref())?;

    let output = Output::parse(&sink)?;
    if store_trades && matches!(output, Output::None) {
        bail!("--store-trades archives trades in the sink: it needs --sink sqlite:PATH or postgres://...");
    }
    let shutdown = Arc::new(AtomicBool::new(false));
    {
        let shutdown = Arc::clone(&shutdown);
        ctrlc::set_handler(move || {
            if shutdown.swap(true, Ordering::SeqCst) {
                eprintln!("tickflow: interrupted twice, exiting without flushing");
                std::process::exit(130);
            }
            eprintln!("tickflow: stopping: committing what is complete (Ctrl-C again to abort)");
        })
        .context("installing the signal handler")?;
    }
    let rate = generator.rate.unwrap_or(1000.0);
    let paced = source == "generate" && rate > 0.0;
    let (input, source_name, format) = match source.as_str() {
        "generate" => {
            let start_ms = if paced { now_ms() } else { DEFAULT_START_MS };
            let config = generator_config(&generator, generator.events, rate, start_ms)?;
            // The name keys stored progress: a paced (live) market is never resumed, and an
            // unpaced one only by a run generating the very same market.
            let name = if paced {
                "generate:live".to_owned()
            } else {
                format!("generate:{}", generator_fingerprint(&config))
            };
            (Input::Generate(config), name, Format::BinanceJson)
        }
        spec if spec.starts_with("kafka://") => {
            let kafka = KafkaSpec::parse(spec)?;
            let name = kafka.source_name();
            let source = KafkaSource::open(kafka, topic_wait, exit_at_end)?;
            let input = Input::Kafka {
                source,
                exit_at_end,
                idle_timeout,
            };
            (input, name, Format::BinanceJson)
        }
        spec => {
            let Some(path) = spec.strip_prefix("file:") else {
                bail!("--source {spec:?}: expected generate, file:PATH or kafka://HOST:PORT/TOPIC");
            };
            let symbol = symbol.as_deref().map(parse_symbol).transpose()?;
            let file = match FileSource::open_with(path, symbol, &shutdown, idle_timeout) {
                Err(FileError::Interrupted(_)) => {
                    eprintln!("tickflow: stopped before any input arrived; nothing to do");
                    return Ok(());
                }
                opened => opened.with_context(|| format!("--source {spec}"))?,
            };
            let format = file.format();
            (Input::File(Arc::new(file)), spec.to_owned(), format)
        }
    };
    let model = settings
        .model
        .resolve(windows.sizes(), format.candle_window_ms())
        .map_err(|e| anyhow::anyhow!("{e} (--model-* flags or [model] in --config)"))?;
    // Sources that can be re-read from a position continue where an earlier run into the
    // same sink stopped (or was killed): Kafka, mapped files, the unpaced generator. A paced
    // generator's event times follow the wall clock, and stdin or gzip cannot seek.
    let resumable = match &input {
        Input::Kafka { .. } => true,
        Input::File(file) => file.seekable(),
        Input::Generate(_) => !paced,
    };
    // Only process 0 writes to the sink, so it alone checks and records what the stored
    // results were made from.
    if process == 0 {
        let identity = run_identity(
            &input,
            &source_name,
            format,
            &windows,
            lateness_ms,
            max_time_jump_ms,
            store_trades,
        )
        .with("settings", settings.fingerprint());
        check_identity(&output, &source_name, &identity, resumable, fresh, quiet)?;
    }
    let stored = if resumable {
        output.stored_progress(&source_name)?
    } else {
        StoredProgress::default()
    };
    if !stored.partitions.is_empty() && !quiet {
        eprintln!(
            "tickflow: resuming {source_name} where the last run into {} stopped ({} partitions)",
            output.describe(),
            stored.partitions.len()
        );
    }
    let resume_from = stored.frontier;
    let resume = Arc::new(stored.partitions);
    // A resumed run's models learn first from the candles the earlier runs committed (the
    // replay horizon does not reach back over the whole training history).
    let stored_candles: Arc<Vec<Candle>> = Arc::new(match (&model, resume_from) {
        (Some(model), Some(_)) if process == 0 => output.stored_candles(model.window_ms)?,
        _ => Vec::new(),
    });
    if !stored_candles.is_empty() && !quiet {
        eprintln!(
            "tickflow: the models learn first from the {} stored candles of their window",
            stored_candles.len()
        );
    }
    // Only process 0 writes; open the database here so a bad path fails before starting.
    let writer: Option<Box<dyn Writer>> = (process == 0)
        .then(|| -> Result<Box<dyn Writer>> {
            Ok(match &output {
                Output::Sqlite(path) => {
                    Box::new(SqliteWriter::open(path).map_err(anyhow::Error::msg)?)
                }
                Output::Postgres(url) => {
                    Box::new(PostgresWriter::open(url).map_err(anyhow::Error::msg)?)
                }
                Output::None => Box::new(NoneWriter),
            })
        })
        .transpose()?;
    let writer = Arc::new(Mutex::new(writer));

    // The endpoint of process 0 serves every symbol's model (the model rows are routed
    // there); a bad --serve fails here, a taken default address only turns it off.
    let listener = match (&serve, process) {
        (_, 1..) => None,
        (Some(spec), _) => crate::serve::bind(spec)?,
        (None, _) => crate::serve::bind(DEFAULT_SERVE).unwrap_or_else(|e| {
            eprintln!("tickflow: {e:#}; running without the HTTP endpoint");
            None
        }),
    };
    let published = listener
        .as_ref()
        .map(|_| Arc::new(crate::serve::Published::default()));
    let counters = Arc::new(Counters::new(workers));
    let status = Arc::new(Mutex::new(SinkStatus::default()));
    let (stop_progress, progress_stopped) = std::sync::mpsc::channel::<()>();
    let health: crate::progress::Health = match &input {
        Input::Kafka { source, .. } => {
            let health = source.health();
            Box::new(move || health.problem())
        }
        _ => Box::new(|| None),
    };
    let reporter = (!quiet).then(|| {
        let counters = Arc::clone(&counters);
        std::thread::spawn(move || {
            crate::progress::report(counters, health, progress_stopped, Duration::from_secs(2))
        })
    });
    if !quiet {
        eprintln!(
            "tickflow: process {process}/{processes}, {workers} worker(s): {source_name} → windows {} (granule {}, lateness {}) → {}",
            windows.sizes().iter().map(|&w| format_duration(w)).collect::<Vec<_>>().join(","),
            format_duration(windows.granule()),
            format_duration(lateness_ms),
            output.describe(),
        );
    }

    let server = match listener {
        Some(listener) => {
            let server = crate::serve::Server::start(
                listener,
                crate::serve::State {
                    models: Arc::clone(published.as_ref().expect("published with a listener")),
                    counters: Arc::clone(&counters),
                    started: Instant::now(),
                },
            )?;
            if !quiet {
                eprintln!(
                    "tickflow: serving http://{}/ (--serve off disables)",
                    server.address
                );
            }
            Some(server)
        }
        None => None,
    };
    // What the dataflows must re-read after a restart: the open windows, and the history
    // the quality checks and the abuse rules remember.
    let horizon = replay_horizon(&settings, &windows);
    let started = Instant::now();
    let input = Arc::new(input);
    let config = timely::Config {
        communication,
        worker: WorkerConfig::default(),
    };
    let worker_status = Arc::clone(&status);
    let worker_counters = Arc::clone(&counters);
    let guards = timely::execute(config, move |worker| {
        let index = worker.index();
        let peers = worker.peers();
        let probe = ProbeHandle::new();
        let tally = Rc::new(RefCell::new(Tally::default()));
        let source_config = SourceConfig {
            name: source_name.clone(),
            format,
            windows: windows.clone(),
            horizon: horizon.clone(),
            lateness_ms,
            max_lag_ms,
            max_time_jump_ms,
            // The sink (and the count of what it has not committed) is on process 0.
            reject_backlog: (process == 0).then_some(REJECT_BACKLOG),
            budget: BUDGET,
            sequential: matches!(input.as_ref(), Input::File(_)),
            resumable,
            shutdown: Arc::clone(&shutdown),
            counters: Arc::clone(&worker_counters),
            slot: index % workers,
        };
        let writer = Arc::clone(&writer);
        let status = Arc::clone(&worker_status);
        worker.dataflow::<u64, _, _>(|scope| {
            let streams = match input.as_ref() {
                Input::File(file) => partitioned_source(
                    scope,
                    source_config,
                    restored(
                        file.partitions(index, peers)
                            .into_iter()
                            .map(|mut part| {
                                if let Some(&(offset, _)) = resume.get(&part.index()) {
                                    part.seek(offset);
                                }
                                part
                            })
                            .collect(),
                        &resume,
                    ),
                    None,
                    probe.clone(),
                    Rc::clone(&tally),
                ),
                Input::Generate(config) => {
                    let now = Instant::now();
                    let parts = worker_partitions(config, index, peers)
                        .into_iter()
                        .map(|mut stream| {
                            if let Some(&(position, _)) = resume.get(&(stream.index() as u32)) {
                                stream.skip_to(position);
                            }
                            GeneratedPartition::new(stream, config.rate > 0.0, config.start_ms, now)
                        })
                        .collect();
                    let parts = restored(parts, &resume);
                    partitioned_source(
                        scope,
                        source_config,
                        parts,
                        None,
                        probe.clone(),
                        Rc::clone(&tally),
                    )
                }
                Input::Kafka {
                    source,
                    exit_at_end,
                    idle_timeout,
                } => {
                    let (parts, discover) =
                        match source.partitions(index, peers, &resume, *exit_at_end, *idle_timeout)
                        {
                            // A live run picks up partitions added to the topic while running.
                            Ok(parts) if !*exit_at_end => {
                                let mut found = source.discoverer(index, peers, *idle_timeout);
                                let discover: Discover<_> = Box::new(move || {
                                    found().into_iter().map(|p| Resumed::new(p, None)).collect()
                                });
                                (restored(parts, &resume), Some(discover))
                            }
                            Ok(parts) => (restored(parts, &resume), None),
                            Err(error) => {
                                tally.borrow_mut().errors.push(error.to_string());
                                (Vec::new(), None)
                            }
                        };
                    partitioned_source(
                        scope,
                        source_config,
                        parts,
                        discover,
                        probe.clone(),
                        Rc::clone(&tally),
                    )
                }
            };
            // Duplicates out before any aggregate; quality counted on the way.
            let checked = quality::quality(
                streams.trades,
                streams.rejects,
                &source_name,
                &settings.quality,
                &windows,
            );
            // The summary counts the copies dropped where the tables do.
            let counted = Rc::clone(&tally);
            let rejects = checked
                .rejects
                .inspect(move |row| match quality::dropped_copy(row) {
                    Some(true) => counted.borrow_mut().late_copies += 1,
                    Some(false) => counted.borrow_mut().dropped_copies += 1,
                    None => {}
                });
            // --store-trades: the valid trades also go to the sink, to be archived.
            let archive = if store_trades {
                checked.trades.clone()
            } else {
                timely::dataflow::operators::generic::operator::empty(scope)
            };
            // The deduplicated trades feed the candles and the abuse rules alike.
            let abuse = abuse_rows(
                checked.trades.clone(),
                checked.with_accounts,
                &settings,
                &windows,
                Arc::clone(&worker_counters),
            );
            let all_candles = candles(checked.trades, &windows).concat(streams.candles);
            let models = model_rows(
                all_candles.clone(),
                model.as_ref(),
                resume_from.map(|frontier| (stored_candles.as_slice(), frontier)),
                published.clone(),
                |candle| match format.candle_window_ms() {
                    // A candle read from a file travels at its start; one computed from
                    // trades at its window's last ms.
                    Some(_) => windows.coarsen(candle.start_ms),
                    None => candle.start_ms + candle.window_ms - 1,
                },
            );
            // Every table's rows into the one sink input.
            let rows = all_candles
                .map(Row::from)
                .concat(models)
                .concat(rejects.map(Row::from))
                .concat(checked.quality.map(Row::from))
                .concat(abuse)
                .concat(archive.map(Row::from));
            commit_sink(
                rows,
                streams.progress,
                move || {
                    writer
                        .lock()
                        .ok()
                        .and_then(|mut w| w.take())
                        .unwrap_or_else(|| Box::new(NoneWriter))
                },
                status,
                SinkOptions {
                    source: source_name.clone(),
                    horizon: horizon.clone(),
                    resume_from,
                    merge: !resumable,
                    counters: Some(Arc::clone(&worker_counters)),
                },
            )
            .probe_with(&probe);
        });
        while !probe.done() {
            if worker_status.lock().is_ok_and(|s| s.error.is_some()) {
                // The sink failed and keeps its capability (it claims no progress it has not
                // made), so the dataflow can never complete: drop it, or timely would step
                // it forever after this closure returns.
                for dataflow in worker.installed_dataflows() {
                    worker.drop_dataflow(dataflow);
                }
                break;
            }
            worker.step_or_park(Some(Duration::from_millis(100)));
        }
        tally.take()
    })
    .map_err(|e| anyhow::anyhow!("starting timely: {e}"))?;

    let mut total = Tally::default();
    let results = guards.join();
    if let Some(server) = server {
        server.stop();
    }
    for result in results {
        let tally = result.map_err(|e| anyhow::anyhow!("a worker failed: {e}"))?;
        total.merge(&tally);
    }
    drop(stop_progress);
    if let Some(reporter) = reporter {
        let _ = reporter.join();
    }
    let status = status
        .lock()
        .map_err(|_| anyhow::anyhow!("sink status poisoned"))?;
    if let Some(error) = &status.error {
        bail!("writing results failed: {error}");
    }
    if let Some(error) = total.errors.first() {
        bail!("reading the input failed: {error}");
    }
    let seconds = started.elapsed().as_secs_f64();
    let total = total.with_copies_rejected(quality::DUPLICATE);
    println!("{}", summary(&total, &status, process, processes, seconds));
    if paced && !status.window_lags_ms.is_empty() {
        println!("{}", latency_line(&status.window_lags_ms, lateness_ms));
    }
    if paced {
        if let Some(line) = decision_line(&counters.decisions()) {
            println!("{line}");
        }
    }
    Ok(())
}

/// The event-time history a resumed run re-reads: the open windows, and the longest
/// history any enabled dataflow's state depends on, begun on a timely time (the trades of a
/// time are all read or none).
fn replay_horizon(settings: &Settings, windows: &Windows) -> Horizon {
    let Settings {
        quality,
        market,
        accounts,
        // A resumed run's models learn from the stored candles first (`model_rows`).
        model: _,
    } = settings;
    let mut horizon = candles::horizon(windows)
        .max(&quality::horizon(quality, windows))
        .max(&market::horizon(market, windows))
        .max(&accounts::horizon(accounts));
    let granule = windows.granule();
    horizon.history_ms = horizon.history_ms.div_ceil(granule) * granule;
    horizon
}

/// The `models` and `predictions` rows of `model` over `candles` (no operator at all when
/// the model is off), every version also `published` for the endpoint; after a restart (`resumed`: the candles the earlier runs committed
/// and their frontier), the stored candles first and the stream's from the frontier on.
fn model_rows<'scope>(
    candles: Stream<'scope, u64, Vec<Candle>>,
    model: Option<&ModelConfig>,
    resumed: Option<(&[Candle], u64)>,
    published: Option<Arc<crate::serve::Published>>,
    time_of: impl Fn(&Candle) -> u64,
) -> Stream<'scope, u64, Vec<Row>> {
    let Some(model) = model else {
        return timely::dataflow::operators::generic::operator::empty(candles.scope());
    };
    let candles = match resumed {
        Some((stored, frontier)) => regression::resumed(candles, stored, frontier, time_of),
        None => candles,
    };
    let streams = regression::regression(candles, model);
    if let Some(published) = published {
        // Worker 0 (on process 0, whose endpoint serves them) publishes every version.
        streams
            .models
            .clone()
            .exchange(|_| 0)
            .inspect_core(move |event| {
                if let Ok((_, rows)) = event {
                    published.publish(rows);
                }
            });
    }
    streams
        .models
        .map(Row::from)
        .concat(streams.predictions.map(Row::from))
}

/// The `--model-*` flags, which override `[model]` of the config file.
struct ModelFlags {
    candles: Option<String>,
    features: Option<String>,
    horizon: Option<usize>,
    window: Option<String>,
    ridge: Option<f64>,
    off: bool,
}

impl ModelFlags {
    fn apply(self, settings: &mut ModelSettings) -> Result<()> {
        if self.off {
            settings.enabled = false;
        }
        if let Some(candles) = self.candles {
            parse_duration(&candles).context("--model-candles")?;
            settings.candles = Some(candles);
        }
        if let Some(list) = self.features {
            settings.features = list
                .split(',')
                .filter(|name| !name.trim().is_empty())
                .map(Feature::parse)
                .collect::<Result<_, _>>()
                .map_err(|e| anyhow::anyhow!("--model-features: {e}"))?;
        }
        if let Some(horizon) = self.horizon {
            settings.horizon = horizon;
        }
        if let Some(window) = self.window {
            settings.window = match window.trim() {
                "all" => None,
                n => Some(n.parse().map_err(|_| {
                    anyhow::anyhow!(
                        "--model-window {window:?}: expected a number of samples or all"
                    )
                })?),
            };
        }
        if let Some(ridge) = self.ridge {
            settings.ridge = ridge;
        }
        Ok(())
    }
}

/// The `alerts` and `wash_stats` rows of the market-abuse rules over `trades` (each trade
/// once, at its coarsened event time; the account rules see only `with_accounts`, those of
/// them that name both accounts); no operator at all for a family switched off. Each
/// alert's delay after the watermark passed its event time is noted in `counters`.
fn abuse_rows<'scope>(
    trades: Stream<'scope, u64, Vec<Trade>>,
    with_accounts: Stream<'scope, u64, Vec<Trade>>,
    settings: &Settings,
    windows: &Windows,
    counters: Arc<Counters>,
) -> Stream<'scope, u64, Vec<Row>> {
    let scope = trades.scope();
    let mut rows = Vec::new();
    if settings.market.any_enabled() {
        // The quality dataflow, when on, hands each trade out on the worker its symbol's
        // hash picks, where the market rules would exchange it to: no second exchange.
        let market = if settings.quality.enabled {
            market::market_alerts_by_symbol(trades, &settings.market, windows)
        } else {
            market::market_alerts(trades, &settings.market, windows)
        };
        let noted = Arc::clone(&counters);
        rows.push(
            market
                .alerts
                .inspect(move |a| noted.note_decision(a.kind.as_str(), a.event_ms, a.detected_ms))
                .map(Row::from),
        );
        rows.push(market.wash_stats.map(Row::from));
    }
    if settings.accounts.any_enabled() {
        rows.push(
            accounts::account_alerts(with_accounts, &settings.accounts)
                .inspect(move |a| {
                    counters.note_decision(a.kind.as_str(), a.event_ms, a.detected_ms)
                })
                .map(Row::from),
        );
    }
    scope.concatenate(rows)
}

/// Percentiles of the time from a window's end to its commit. With the paced generator event
/// time follows the wall clock, so this is the result latency a user sees; it includes the
/// allowed lateness, which a window must wait for by definition.
fn latency_line(lags: &[u64], lateness_ms: u64) -> String {
    let at = quantiles(lags);
    format!(
        "tickflow: window end → committed: p50 {} ms, p90 {} ms, p99 {} ms, max {} ms over {} candles (includes the {} ms lateness)",
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0),
        lags.len(),
        lateness_ms
    )
}

/// The `q`-quantile of `values` (not empty), by rounded rank, for any `q` in `[0, 1]`.
fn quantiles(values: &[u64]) -> impl Fn(f64) -> u64 {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    move |q| sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Percentiles of the time from the watermark passing an alert's event time to its decision
/// (`detected_ms`), over all alerts and per kind. The watermark passing is the wall-clock
/// moment every local worker's source had moved beyond that time.
fn decision_line(delays: &BTreeMap<&'static str, Vec<u64>>) -> Option<String> {
    let stats = |delays: &[u64]| {
        let at = quantiles(delays);
        format!(
            "p50 {} ms, p99 {} ms, max {} ms ({})",
            at(0.5),
            at(0.99),
            at(1.0),
            delays.len()
        )
    };
    let all: Vec<u64> = delays.values().flatten().copied().collect();
    if all.is_empty() {
        return None;
    }
    let kinds: Vec<String> = delays
        .iter()
        .map(|(kind, d)| format!("{kind} {}", stats(d)))
        .collect();
    Some(format!(
        "tickflow: alerts decided after the watermark passed their event time: {}; {}",
        stats(&all),
        kinds.join("; ")
    ))
}

/// The one-line summary of a finished run.
fn summary(t: &Tally, s: &SinkStatus, process: usize, processes: usize, seconds: f64) -> String {
    let list = |items: Vec<(String, u64)>| {
        if items.is_empty() {
            String::new()
        } else {
            let parts: Vec<_> = items.iter().map(|(k, n)| format!("{k} {n}")).collect();
            format!(" ({})", parts.join(", "))
        }
    };
    let skipped: u64 = t.skipped.values().sum();
    let rejected: u64 = t.rejected.values().sum();
    let who = if processes > 1 {
        format!(" [process {process}/{processes}]")
    } else {
        String::new()
    };
    format!(
        "tickflow: done{who} in {seconds:.2}s: {} events read, {} trades, {} candle rows read, {skipped} skipped{}, {rejected} rejected{}, {} candles and {} rejects written{}{} in {} commits ({:.2}s in the sink's writer), {:.0} events/s",
        t.records,
        t.trades,
        t.candles,
        list(t.skipped.iter().map(|(k, n)| (k.clone(), *n)).collect()),
        list(t.rejected.iter().map(|(k, n)| (k.to_string(), *n)).collect()),
        s.rows(&tables::CANDLES),
        s.rows(&tables::REJECTS),
        if s.rows(&tables::TRADES) > 0 {
            format!(", {} trades archived", s.rows(&tables::TRADES))
        } else {
            String::new()
        },
        if s.rows(&tables::ALERTS) > 0 {
            format!(", {} alerts", s.rows(&tables::ALERTS))
        } else {
            String::new()
        },
        s.commits,
        s.write_seconds,
        t.records as f64 / seconds.max(1e-9),
    )
}

/// timely's communication settings from the cluster flags.
fn cluster_config(
    workers: usize,
    processes: usize,
    process: usize,
    hostfile: Option<&std::path::Path>,
) -> Result<CommunicationConfig> {
    if processes == 0 {
        bail!("--processes must be at least 1");
    }
    if process >= processes {
        bail!(
            "--process {process} is out of range for --processes {processes} (0..{})",
            processes - 1
        );
    }
    if processes == 1 {
        return Ok(CommunicationConfig::Process(workers));
    }
    let addresses: Vec<String> = match hostfile {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading --hostfile {}", path.display()))?;
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned)
                .collect()
        }
        None => (0..processes)
            .map(|i| format!("localhost:{}", 2101 + i))
            .collect(),
    };
    if addresses.len() < processes {
        bail!(
            "--hostfile lists {} address(es) for {processes} processes",
            addresses.len()
        );
    }
    let addresses: Vec<String> = addresses.into_iter().take(processes).collect();
    crate::cluster::stop_on_lost_peer(addresses.clone());
    Ok(CommunicationConfig::Cluster {
        threads: workers,
        process,
        addresses,
        report: false,
        zerocopy: false,
    })
}

/// The generator's settings from the command line; `start_ms` applies unless `--start-ms`
/// is given.
pub fn generator_config(
    args: &GeneratorArgs,
    events: Option<u64>,
    rate: f64,
    start_ms: u64,
) -> Result<GeneratorConfig> {
    let defaults = GeneratorConfig::default();
    let config = GeneratorConfig {
        seed: args.seed,
        symbols: match args.symbols.as_deref() {
            Some(list) => parse_symbols(list)?,
            None => defaults.symbols.clone(),
        },
        events,
        rate,
        start_ms: args.start_ms.unwrap_or(start_ms),
        accounts: args.accounts,
        defects: args.defects,
        anomalies: args.anomalies,
        ..defaults
    };
    config.validate().context("generator settings")?;
    Ok(config)
}

/// `parts`, already positioned at their stored offsets, with the running maximum event time
/// stored for each restored (see [`Resumed`]).
fn restored<P: Partition>(
    parts: Vec<P>,
    resume: &HashMap<u32, (u64, Option<u64>)>,
) -> Vec<Resumed<P>> {
    parts
        .into_iter()
        .map(|part| {
            let max = resume.get(&part.index()).and_then(|&(_, max)| max);
            Resumed::new(part, max)
        })
        .collect()
}

/// What determines this run's results: the source's identity (a file by its size and a
/// hash of its head and tail; the generator by its settings; Kafka by its brokers and topic)
/// and every setting the tables depend on. Settings that only pace or place the work
/// (workers, processes, --max-lag, --idle-timeout) are not part of it.
fn run_identity(
    input: &Input,
    source_name: &str,
    format: Format,
    windows: &Windows,
    lateness_ms: u64,
    max_time_jump_ms: u64,
    store_trades: bool,
) -> Identity {
    let mut identity = Identity::new().with("source", source_name);
    match input {
        Input::File(file) => {
            for (key, value) in file.identity() {
                identity = identity.with(key, value);
            }
        }
        Input::Generate(config) => {
            identity = identity.with("generator", generator_fingerprint(config));
        }
        Input::Kafka { source, .. } => {
            let spec = source.spec();
            identity = identity
                .with("kafka.brokers", &spec.brokers)
                .with("kafka.topic", &spec.topic);
            // The same address can name another cluster after a redeployment, whose offsets
            // mean other records.
            if let Some(cluster) = source.cluster_id() {
                identity = identity.with("kafka.cluster", cluster);
            }
        }
    }
    let format = match format {
        Format::BinanceJson => "binance-json".to_owned(),
        Format::BinanceCsv { symbol } => format!("binance-csv:{symbol}"),
        Format::CandleCsv => "candle-csv".to_owned(),
    };
    let granule = format_duration(windows.granule());
    let windows: Vec<String> = windows
        .sizes()
        .iter()
        .map(|&w| format_duration(w))
        .collect();
    identity
        .with("format", format)
        .with("windows", windows.join(","))
        .with("granule", granule)
        .with("lateness", format_duration(lateness_ms))
        .with("max_time_jump", format_duration(max_time_jump_ms))
        .with("store_trades", store_trades)
}

/// Refuses to resume `source` from progress that another input or other settings made;
/// `--fresh` discards that progress and its results first. Records the identity otherwise.
fn check_identity(
    output: &Output,
    source: &str,
    identity: &Identity,
    resumable: bool,
    fresh: bool,
    quiet: bool,
) -> Result<()> {
    if matches!(output, Output::None) {
        return Ok(());
    }
    if fresh {
        output.discard(source)?;
        if !quiet {
            eprintln!(
                "tickflow: --fresh: discarded the progress and results of {source} in {}",
                output.describe()
            );
        }
    } else if resumable {
        if let Some(stored) = output.stored_identity(source)? {
            if stored.fingerprint() != identity.fingerprint() {
                let changes: Vec<String> = identity
                    .changes_since(&stored)
                    .into_iter()
                    .map(|change| format!("\n  {change}"))
                    .collect();
                bail!(
                    "{} holds results of {source} made from another input or with other \
                     settings:{}\nResuming would mix two runs in one table. Run again with --fresh \
                     to discard the progress and results of {source} in {}, or write to another \
                     sink (--sink ...).",
                    output.describe(),
                    changes.concat(),
                    output.describe()
                );
            }
        }
    }
    if resumable {
        output.record_identity(source, identity)?;
    }
    Ok(())
}

/// The generator's settings, every field by name, hashed with the pinned hash.
fn generator_fingerprint(config: &GeneratorConfig) -> String {
    let GeneratorConfig {
        seed,
        symbols,
        events,
        rate,
        start_ms,
        accounts,
        max_delay_ms,
        defects,
        anomalies,
        late_ms,
    } = config;
    let symbols: Vec<&str> = symbols.iter().map(|s| s.as_str()).collect();
    let mut hasher = StableHasher::new();
    hasher
        .field(&seed.to_le_bytes())
        .field(symbols.join(",").as_bytes())
        .field(format!("{events:?}").as_bytes())
        .field(&rate.to_bits().to_le_bytes())
        .field(&start_ms.to_le_bytes())
        .field(&accounts.to_le_bytes())
        .field(&max_delay_ms.to_le_bytes());
    // Only when injecting, so that the identity of runs without injection is unchanged.
    if *defects != 0.0 || *anomalies != 0.0 {
        hasher
            .field(&defects.to_bits().to_le_bytes())
            .field(&anomalies.to_bits().to_le_bytes())
            .field(&late_ms.to_le_bytes());
    }
    format!("{:016x}", hasher.finish())
}

pub fn parse_symbol(text: &str) -> Result<Symbol> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_alphanumeric()) {
        bail!("invalid symbol {text:?}: expected letters and digits, e.g. BTCUSDT");
    }
    Symbol::new(&text.to_ascii_uppercase())
        .with_context(|| format!("symbol {text:?} is longer than 23 characters"))
}

pub fn parse_symbols(list: &str) -> Result<Vec<Symbol>> {
    list.split(',').map(parse_symbol).collect()
}

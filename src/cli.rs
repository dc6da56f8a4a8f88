//! The command line (SPEC.md, "Command line").

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// tickflow: real-time analytics for exchange trade streams.
#[derive(Debug, Parser)]
#[command(
    name = "tickflow",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// `tickflow [OPTIONS]` is `tickflow run [OPTIONS]`.
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // Parsed once at start; boxing buys nothing.
pub enum Command {
    /// Run the engine (the default).
    Run(RunArgs),
    /// Write generated trades to a file as Binance trade-stream JSON lines, with injected
    /// defects and anomalies and a ground-truth file listing every one of them.
    ///
    /// Each symbol is generated on its own (seeded from --seed and its name). Defects
    /// (--defects, per record) rotate through: malformed_json (a line cut before its
    /// symbol), missing_field (one of s t p q T m removed), non_positive and bad_number (p or
    /// q zero, negative, NaN, non-numeric), time_outlier (T 10-100 years ahead), duplicate
    /// (the trade again 1-120 s later, a quarter with a conflicting price), late (held back
    /// until a trade --late-ms + 1-3 s newer was delivered) and gap (1-5 consecutive ids
    /// dropped). Anomalies (--anomalies, per trade) rotate through volume_burst,
    /// round_sizes, pump_and_dump and benford (one at a time per symbol, 10 s apart, the
    /// first after 4 minutes of normal trading) and, alongside, bad_tick, wash_trade,
    /// wash_ring and velocity_burst (one at a time, 3 s apart). With anomalies, no
    /// equal-quantity cycle of trades between accounts (a wash ring) happens by chance.
    ///
    /// Every injection is one JSON line of the truth file: {"class", "kind", "quality"
    /// (defects), "symbol", "accounts", "trade_ids", "count", "first_ms", "last_ms",
    /// "params"}. --defects 0 --anomalies 0 writes the clean market.
    Generate(GenerateArgs),
    /// Write generated or replayed trades into a Kafka topic (created if missing).
    Produce(ProduceArgs),
    /// Run a SQL query on the results (SQLite or PostgreSQL) and print tab-separated rows.
    Sql(SqlArgs),
    /// Compare a run's `quality` and `alerts` tables with the ground truth of `tickflow
    /// generate --truth`: quality counts against the injected counts, and per alert kind
    /// recall, precision, false positives per million trades and detection latency.
    ///
    /// An alert matches an injection of the same kind and symbol when the `trade_ids` of its
    /// details intersect the injection's (benford, round_sizes: when its window overlaps the
    /// injection's first_ms..last_ms); for wash_trade and velocity_burst its account must be
    /// one of the injection's as well. Exit code 1 when a quality count differs or a kind is
    /// below --min-recall or --min-precision; 2 when the truth or the results cannot be read.
    Eval(EvalArgs),
}

#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    /// generate | file:PATH (.jsonl, .json, .csv, optionally .gz; '-' = stdin) |
    /// kafka://HOST:PORT[,HOST:PORT...]/TOPIC[?group=ID]
    #[arg(long, default_value = "generate", value_name = "SPEC")]
    pub source: String,
    /// sqlite:PATH | postgres://USER[:PASSWORD]@HOST[:PORT]/DB | none
    #[arg(long, default_value = "sqlite:tickflow.db", value_name = "SPEC")]
    pub sink: String,
    /// HTTP endpoint HOST:PORT (prediction API: /health, /model/info, /predict,
    /// /batch_predict, /model/reload), or `off` [default: 127.0.0.1:8080; if that address
    /// is taken the run goes on without the endpoint].
    #[arg(long, value_name = "ADDR", env = "TICKFLOW_SERVE")]
    pub serve: Option<String>,
    /// Also archive every valid trade in the `trades` table (PostgreSQL sink; binary COPY).
    #[arg(long)]
    pub store_trades: bool,
    /// Discard this source's stored progress and results in the sink and start over, instead
    /// of resuming (needed after the input or a setting that determines results changed).
    #[arg(long)]
    pub fresh: bool,
    /// Tumbling event-time windows, e.g. 1s,1m,1h.
    #[arg(long, default_value = "1s,1m", value_name = "LIST")]
    pub windows: String,
    /// Timestamp granule: records travel at their event time rounded down to this (or to
    /// the gcd with the window sizes), so the watermark advances in steps of it. Finer:
    /// alerts and candles decided sooner after the watermark passes; coarser: fewer distinct
    /// times to track (0: the windows' gcd).
    #[arg(long, default_value = "100ms", value_name = "DUR")]
    pub granule: String,
    /// Allowed lateness: events older than a partition's max event time minus this are late.
    #[arg(long, default_value = "2s", value_name = "DUR")]
    pub lateness: String,
    /// Analytics settings (TOML; unknown keys are an error): quality and market-abuse
    /// checks, their thresholds; see README "Configuration" [default: built-in defaults].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// How long a trade id is remembered for deduplication and gap counting, after its
    /// event time (overrides the config file's quality.dedup_horizon) [default: 3m].
    #[arg(long, value_name = "DUR")]
    pub dedup_horizon: Option<String>,
    /// Regression model: the candle window it learns from (overrides model.candles)
    /// [default: the shortest of --windows; for a candle file, its daily candles].
    #[arg(long, value_name = "DUR")]
    pub model_candles: Option<String>,
    /// Regression model: features, comma-separated, from open, high, low, close, volume,
    /// vwap, trades (overrides model.features) [default: open,high,low,volume].
    #[arg(long, value_name = "LIST")]
    pub model_features: Option<String>,
    /// Regression model: the features of candle t predict the close of candle t+H; 0 is a
    /// nowcast of the candle's own close (overrides model.horizon) [default: 0].
    #[arg(long, value_name = "H")]
    pub model_horizon: Option<usize>,
    /// Regression model: train on the last N samples, or `all` (overrides model.window)
    /// [default: all].
    #[arg(long, value_name = "N")]
    pub model_window: Option<String>,
    /// Regression model: ridge penalty on standardized coefficients (overrides
    /// model.ridge) [default: 0].
    #[arg(long, value_name = "LAMBDA")]
    pub model_ridge: Option<f64>,
    /// No regression model (overrides model.enabled).
    #[arg(long)]
    pub no_model: bool,
    /// Timely worker threads per process [default: available cores].
    #[arg(short = 'w', long, value_name = "N")]
    pub workers: Option<usize>,
    /// Number of processes in the cluster.
    #[arg(short = 'n', long, default_value_t = 1, value_name = "N")]
    pub processes: usize,
    /// Index of this process in the cluster, 0..N-1.
    #[arg(short = 'p', long, default_value_t = 0, value_name = "I")]
    pub process: usize,
    /// One host:port per line, in process order [default: localhost:2101, :2102, …].
    #[arg(long, value_name = "FILE")]
    pub hostfile: Option<PathBuf>,
    /// Symbol of a Binance trade CSV whose file name does not say it.
    #[arg(long, value_name = "SYMBOL")]
    pub symbol: Option<String>,
    /// No progress lines on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Kafka: stop once every partition has reached its high watermark at start.
    #[arg(long)]
    pub exit_at_end: bool,
    /// Kafka: a partition caught up and quiet this long stops holding the watermark back.
    #[arg(long, default_value = "5s", value_name = "DUR")]
    pub idle_timeout: String,
    /// Kafka: how long to wait at start for the broker and the topic.
    #[arg(long, default_value = "30s", value_name = "DUR")]
    pub topic_wait: String,
    /// A trade further ahead of its partition's clock is held until later records confirm
    /// the jump, and rejected (time_outlier) if they do not; also the most a trade may be
    /// ahead of the wall clock.
    #[arg(long, default_value = "10m", value_name = "DUR")]
    pub max_time_jump: String,
    /// How far (event time) sources may run ahead of the committed results.
    #[arg(long, default_value = "30s", value_name = "DUR")]
    pub max_lag: String,
    #[command(flatten)]
    pub generator: GeneratorArgs,
}

#[derive(Debug, Args, Clone)]
pub struct GeneratorArgs {
    /// Generator: stop after N events [default: never].
    #[arg(long, value_name = "N")]
    pub events: Option<u64>,
    /// Events per second in real time; 0 = as fast as possible [default: 1000 for `run`,
    /// 0 for `produce`].
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,
    /// Generator: random seed.
    #[arg(long, default_value_t = 42, value_name = "S")]
    pub seed: u64,
    /// Generator: symbols, comma-separated [default: 8 major USDT pairs].
    #[arg(long, value_name = "LIST")]
    pub symbols: Option<String>,
    /// Generator: size of the account pool for buyer/seller ids "B"/"S"; 0 = no accounts.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub accounts: u32,
    /// Generator: event time of the first trade, ms since the epoch [default: now when
    /// paced, 2023-11-14T22:13:20Z at --rate 0].
    #[arg(long, value_name = "MS")]
    pub start_ms: Option<u64>,
    /// Generator: expected injected defects per record (malformed and invalid lines,
    /// duplicates, late trades, id gaps); 0 = none. See `tickflow generate --help`.
    #[arg(long, default_value_t = 0.0, value_name = "RATE")]
    pub defects: f64,
    /// Generator: expected injected market-abuse anomalies per trade; 0 = none. With
    /// --accounts 0, a pool of 1000 accounts is used.
    #[arg(long, default_value_t = 0.0, value_name = "RATE")]
    pub anomalies: f64,
}

/// `tickflow generate`; the help text is on [`Command::Generate`].
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Output file ('-' = stdout; a name ending in .gz is compressed).
    #[arg(long, value_name = "FILE")]
    pub out: String,
    /// Ground-truth file: one JSON line per injected defect or anomaly [default: next to
    /// --out, NAME.truth.jsonl, when anything is injected; none for --out -].
    #[arg(long, value_name = "FILE")]
    pub truth: Option<String>,
    /// Expected injected defects per record; 0 = none.
    #[arg(long, default_value_t = 0.001, value_name = "RATE")]
    pub defects: f64,
    /// Expected injected anomalies per trade; 0 = none. With --accounts 0, a pool of 1000
    /// accounts is used.
    #[arg(long, default_value_t = 0.0002, value_name = "RATE")]
    pub anomalies: f64,
    /// The engine's allowed lateness that injected late trades are behind by (plus 1 s).
    #[arg(long, default_value_t = 2_000, value_name = "MS")]
    pub late_ms: u64,
    /// Number of trades of the market (injected trades and lines come on top).
    #[arg(long, default_value_t = 1_000_000, value_name = "N")]
    pub events: u64,
    /// Event-time rate of the simulated market, events/s [default: 10000].
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,
    /// Random seed.
    #[arg(long, default_value_t = 42, value_name = "S")]
    pub seed: u64,
    /// Symbols, comma-separated [default: 8 major USDT pairs].
    #[arg(long, value_name = "LIST")]
    pub symbols: Option<String>,
    /// Size of the account pool for "B"/"S"; 0 = none.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub accounts: u32,
    /// Event time of the first trade, ms since the epoch.
    #[arg(long, value_name = "MS")]
    pub start_ms: Option<u64>,
    /// No progress lines on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// The topic: kafka://HOST:PORT[,HOST:PORT...]/TOPIC
    #[arg(long, value_name = "SPEC")]
    pub to: String,
    /// generate | file:PATH (JSON lines, optionally .gz; '-' = stdin): lines are sent as they are
    #[arg(long, default_value = "generate", value_name = "SPEC")]
    pub source: String,
    /// Partitions of the topic: created with N, or grown to N if it has fewer
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub partitions: i32,
    /// No progress lines on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    #[command(flatten)]
    pub generator: GeneratorArgs,
}

#[derive(Debug, Args)]
pub struct SqlArgs {
    /// The query.
    pub query: String,
    /// SQLite database file, or a postgres://USER@HOST[:PORT]/DB URL.
    #[arg(long, default_value = "tickflow.db", value_name = "PATH|URL")]
    pub db: PathBuf,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Ground-truth file written by `tickflow generate --truth`.
    #[arg(long, value_name = "FILE")]
    pub truth: String,
    /// The run's results: sqlite:PATH | postgres://USER[:PASSWORD]@HOST[:PORT]/DB
    #[arg(long, value_name = "SINK")]
    pub results: String,
    /// Fail (exit 1) when a kind with injections has a lower recall [default: no threshold].
    #[arg(long, value_name = "R")]
    pub min_recall: Option<f64>,
    /// Fail (exit 1) when a kind with alerts has a lower precision [default: no threshold].
    #[arg(long, value_name = "P")]
    pub min_precision: Option<f64>,
    /// The run's allowed lateness: latency after the watermark = latency − lateness.
    #[arg(long, default_value = "2s", value_name = "DUR")]
    pub lateness: String,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

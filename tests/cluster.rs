//! A process lost from a cluster: the survivor stops with one line naming the lost peer and
//! exit code 1, and `scripts/cluster.sh` starts the whole cluster again, which resumes from
//! the committed results and ends with the candles of an uninterrupted run.

mod common;

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use common::*;

const EVENTS: u64 = 1_000_000;
const WINDOWS: &str = "1s,10s";
/// A short dedup horizon, so that runs store resume offsets every 10 s of this 100 s market
/// (the default 3m holds them until the end, to replay the dedup state).
const DEDUP_HORIZON: &str = "1s";
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/cluster.sh");

/// A config file with the abuse rules off, for the same reason as [`DEDUP_HORIZON`]: their
/// minutes of history would hold the resume offsets until the end (see
/// [`common::ABUSE_RULES_OFF`]).
fn rules_off() -> &'static str {
    static PATH: OnceLock<String> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cluster-test");
        std::fs::create_dir_all(&dir).expect("scratch directory");
        let file = dir.join("rules-off.toml");
        std::fs::write(&file, ABUSE_RULES_OFF).expect("config written");
        file.display().to_string()
    })
}

/// What every run here sets: the windows, the dedup horizon and the rules off.
fn settings() -> [&'static str; 6] {
    [
        "--windows",
        WINDOWS,
        "--dedup-horizon",
        DEDUP_HORIZON,
        "--config",
        rules_off(),
    ]
}

/// One cluster at a time: a kill must land mid-run, and two clusters at once on a small
/// machine would only make each slower.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A generated file of `EVENTS` trades, long enough to kill a debug build mid-run, and the
/// candles of one uninterrupted single-process run over it; made once per test process in
/// cargo's test scratch directory.
struct Input {
    file: PathBuf,
    reference: Vec<Vec<String>>,
}

fn input() -> &'static Input {
    static INPUT: OnceLock<Input> = OnceLock::new();
    INPUT.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cluster-test");
        std::fs::create_dir_all(&dir).expect("scratch directory");
        let _ = std::fs::remove_file(dir.join("reference.db"));
        let file = generate(&dir, "trades.jsonl", EVENTS);
        let source = format!("file:{}", file.display());
        run(
            &dir,
            &source,
            "sqlite:reference.db",
            &[&["-w", "2"][..], &settings()].concat(),
        );
        let reference = candles(&dir.join("reference.db"));
        assert!(reference.len() > 100, "the reference has candles");
        Input { file, reference }
    })
}

/// `query`'s single integer on a database another process is writing; None while the
/// database or its tables do not exist yet, or are locked.
fn count(db: &Path, query: &str) -> Option<i64> {
    if !db.exists() {
        return None;
    }
    let connection =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .ok()?;
    connection.busy_timeout(Duration::from_secs(1)).ok()?;
    connection.query_row(query, [], |row| row.get(0)).ok()
}

/// Waits until the sink has committed progress for some source partitions, and checks that
/// others are not finished yet: a kill now lands mid-run.
fn wait_for_progress(db: &Path) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let committed = count(db, "SELECT count(*) FROM source_offsets").unwrap_or(0);
        if committed > 0 {
            let unfinished = count(db, "SELECT count(*) FROM source_offsets WHERE finished = 0")
                .expect("source_offsets readable");
            let candles_now = count(db, "SELECT count(*) FROM candles").expect("candles");
            assert!(
                unfinished > 0 && (candles_now as usize) < input().reference.len(),
                "the run finished before it could be killed mid-run \
                 ({unfinished} unfinished partitions, {candles_now} candles)"
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no progress committed to {}",
            db.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for `child`, killing it and failing after `limit`.
fn wait_at_most(child: &mut Child, limit: Duration, what: &str) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).expect("readable log")
}

fn assert_no_panic(stderr: &str) {
    for word in [
        "panicked",
        "backtrace",
        "RUST_BACKTRACE",
        "timely communication error",
    ] {
        assert!(
            !stderr.contains(word),
            "stderr has {word:?}, a panic leaked out:\n{stderr}"
        );
    }
}

/// The start of the survivor's line for a lost `victim` listed at `address`.
fn lost_line(victim: usize, address: &str) -> String {
    format!("tickflow: error: lost the connection to process {victim} ({address}) of the cluster (")
}

/// Two `tickflow run -n 2` processes by hand; one is killed with SIGKILL after the first
/// commit: the other prints one line naming it and exits 1.
#[test]
fn a_survivor_stops_with_one_line_naming_the_lost_process_and_exit_code_1() {
    let input = input();
    let _serial = serial();
    for victim in [1, 0] {
        let survivor = 1 - victim;
        let dir = tempfile::tempdir().expect("temp dir");
        let addresses: Vec<String> = (0..2)
            .map(|_| format!("127.0.0.1:{}", free_port()))
            .collect();
        let hostfile = dir.path().join("hosts");
        std::fs::write(&hostfile, addresses.join("\n")).expect("hostfile");
        let source = format!("file:{}", input.file.display());
        let mut children: Vec<Child> = (0..2)
            .map(|p: usize| {
                let stderr =
                    File::create(dir.path().join(format!("stderr-{p}"))).expect("stderr file");
                Command::new(BIN)
                    .env("TICKFLOW_SERVE", "off")
                    .args(["run", "-n", "2", "-p", &p.to_string(), "--hostfile"])
                    .arg(&hostfile)
                    .args(["-w", "1"])
                    .args(settings())
                    .arg("--quiet")
                    .args(["--source", &source, "--sink", "sqlite:d.db"])
                    .current_dir(dir.path())
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(stderr)
                    .spawn()
                    .expect("process starts")
            })
            .collect();
        wait_for_progress(&dir.path().join("d.db"));
        children[victim].kill().expect("SIGKILL sent");
        let killed = children[victim].wait().expect("victim reaped");
        assert_eq!(
            killed.signal(),
            Some(9),
            "process {victim} had already ended ({killed}) when it was killed"
        );
        let status = wait_at_most(
            &mut children[survivor],
            Duration::from_secs(60),
            "the survivor",
        );
        let stderr = read(&dir.path().join(format!("stderr-{survivor}")));
        assert_eq!(
            status.code(),
            Some(1),
            "process {survivor} after losing process {victim}: {status}\n{stderr}"
        );
        assert_no_panic(&stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "one line:\n{stderr}");
        assert!(
            lines[0].starts_with(&lost_line(victim, &addresses[victim])),
            "{}",
            lines[0]
        );
        assert!(
            lines[0].contains("Start every process again with the same command"),
            "{}",
            lines[0]
        );
    }
}

/// `scripts/cluster.sh` with one process killed mid-run (process 1, then in a second run
/// process 0, the sink's writer): the survivor stops with its one line, the script starts the
/// cluster again, which resumes and ends with the uninterrupted run's candles.
#[test]
fn cluster_sh_restarts_a_cluster_that_lost_a_process_and_ends_with_the_reference_candles() {
    let input = input();
    let _serial = serial();
    for victim in [1, 0] {
        let survivor = 1 - victim;
        let dir = tempfile::tempdir().expect("temp dir");
        let pidfile = dir.path().join("pids");
        let stderr_path = dir.path().join("stderr");
        let mut script = Command::new("bash")
            .arg(SCRIPT)
            .args(["2", "-w", "1"])
            .args(settings())
            .arg("--source")
            .arg(format!("file:{}", input.file.display()))
            .args(["--sink", "sqlite:c.db"])
            .env("TICKFLOW", BIN)
            .env("TICKFLOW_CLUSTER_PIDFILE", &pidfile)
            .env_remove("TICKFLOW_CLUSTER_RETRIES")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&stderr_path).expect("stderr file"))
            .spawn()
            .expect("cluster.sh starts");
        wait_for_progress(&dir.path().join("c.db"));
        let pids: Vec<String> = read(&pidfile).lines().map(str::to_owned).collect();
        assert_eq!(pids.len(), 2, "pid file: {pids:?}");
        let killed = Command::new("kill")
            .args(["-9", &pids[victim]])
            .status()
            .expect("kill runs");
        assert!(killed.success(), "process {victim} was not running");

        let status = wait_at_most(&mut script, Duration::from_secs(300), "cluster.sh");
        let stderr = read(&stderr_path);
        assert!(status.success(), "cluster.sh: {status}\n{stderr}");
        assert_no_panic(&stderr);
        // The kill landed on a running process, the survivor said so in one line, and the
        // script restarted the cluster once.
        let restarts: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("cluster.sh: "))
            .collect();
        assert_eq!(
            restarts,
            [format!(
                "cluster.sh: process {victim} was killed by signal 9; starting the cluster \
                 again on fresh ports to resume from the committed results (restart 1 of 3)"
            )],
            "{stderr}"
        );
        let lost: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains("lost the connection"))
            .collect();
        assert_eq!(lost.len(), 1, "{stderr}");
        let prefix = format!(
            "[p{survivor}] tickflow: error: lost the connection to process {victim} (127.0.0.1:"
        );
        assert!(lost[0].starts_with(&prefix), "{}", lost[0]);
        // The second cluster resumed from the committed progress rather than starting over.
        assert!(
            stderr.contains("[p0] tickflow: resuming file:"),
            "no resume:\n{stderr}"
        );
        assert!(!pidfile.exists(), "the pid file outlived the script");
        assert_eq!(
            candles(&dir.path().join("c.db")),
            input.reference,
            "candles after a restart differ from an uninterrupted run"
        );
    }
}

/// A terminal's Ctrl-C (SIGINT to the script's whole process group) stops every process
/// gracefully, once, without a restart; the same command then finishes the file, with the
/// uninterrupted run's candles.
#[test]
fn ctrl_c_stops_the_cluster_gracefully_without_restarting_it() {
    let input = input();
    let _serial = serial();
    let dir = tempfile::tempdir().expect("temp dir");
    let source = format!("file:{}", input.file.display());
    let cluster = |stderr: &Path| {
        // env --default-signal: bash cannot trap a signal ignored when it starts, as SIGINT
        // is when the tests themselves run in the background.
        Command::new("env")
            .args(["--default-signal=INT,TERM", "bash", SCRIPT])
            .args(["2", "-w", "1"])
            .args(settings())
            .args(["--source", &source])
            .args(["--sink", "sqlite:c.db"])
            .env("TICKFLOW", BIN)
            .current_dir(dir.path())
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(stderr).expect("stderr file"))
            .spawn()
            .expect("cluster.sh starts")
    };
    let first = dir.path().join("stderr-1");
    let mut script = cluster(&first);
    wait_for_progress(&dir.path().join("c.db"));
    let sent = Command::new("kill")
        .args(["-INT", "--", &format!("-{}", script.id())])
        .status()
        .expect("kill runs");
    assert!(sent.success(), "SIGINT could not be sent");
    let status = wait_at_most(&mut script, Duration::from_secs(120), "cluster.sh");
    let stderr = read(&first);
    assert!(
        status.success(),
        "cluster.sh after Ctrl-C: {status}\n{stderr}"
    );
    assert_no_panic(&stderr);
    for p in 0..2 {
        let stopping = format!("[p{p}] tickflow: stopping: committing what is complete");
        assert_eq!(
            stderr.matches(&stopping).count(),
            1,
            "process {p} is asked to stop once:\n{stderr}"
        );
    }
    assert!(
        !stderr.contains("interrupted twice") && !stderr.contains("cluster.sh:"),
        "{stderr}"
    );
    let stopped_with = count(&dir.path().join("c.db"), "SELECT count(*) FROM candles");
    assert!(
        stopped_with.is_some_and(|n| (n as usize) < input.reference.len()),
        "the Ctrl-C came after the end"
    );

    let second = dir.path().join("stderr-2");
    let mut script = cluster(&second);
    let status = wait_at_most(&mut script, Duration::from_secs(300), "cluster.sh");
    assert!(status.success(), "{}", read(&second));
    assert_eq!(candles(&dir.path().join("c.db")), input.reference);
}

/// A stand-in for the binary that records each start (the hostfile's addresses) and exits
/// with `code`.
fn failing_binary(dir: &Path, code: i32) -> PathBuf {
    let path = dir.join(format!("fails-{code}"));
    let log = dir.join("starts");
    let script = format!(
        "#!/bin/sh\n\
         while [ $# -gt 0 ]; do\n\
         \x20   if [ \"$1\" = --hostfile ]; then hosts=$(tr '\\n' ' ' < \"$2\"); fi\n\
         \x20   shift\n\
         done\n\
         echo \"$hosts\" >> '{log}'\n\
         exit {code}\n",
        log = log.display()
    );
    std::fs::write(&path, script).expect("script written");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

fn starts(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("starts"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A cluster that keeps failing is started TICKFLOW_CLUSTER_RETRIES more times, each on
/// fresh ports, then the script gives up with a non-zero exit code; a usage error (exit 2)
/// is not retried.
#[test]
fn cluster_sh_gives_up_after_the_retries_and_never_retries_a_usage_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let script = |binary: &Path| {
        Command::new("bash")
            .arg(SCRIPT)
            .args(["2", "--source", "file:x.jsonl"])
            .env("TICKFLOW", binary)
            .env("TICKFLOW_CLUSTER_RETRIES", "2")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("cluster.sh runs")
    };

    let out = script(&failing_binary(dir.path(), 1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let started = starts(dir.path());
    assert_eq!(started.len(), 6, "3 clusters of 2 processes: {started:?}");
    let clusters: std::collections::BTreeSet<&str> =
        started.iter().map(|addresses| addresses.trim()).collect();
    assert_eq!(
        clusters.len(),
        3,
        "each cluster on fresh ports: {started:?}"
    );
    assert_eq!(
        stderr.matches("starting the cluster again").count(),
        2,
        "{stderr}"
    );
    assert!(
        stderr.contains("giving up after 2 restart(s) (TICKFLOW_CLUSTER_RETRIES=2)"),
        "{stderr}"
    );

    std::fs::remove_file(dir.path().join("starts")).expect("log removed");
    let out = script(&failing_binary(dir.path(), 2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(starts(dir.path()).len(), 2, "{stderr}");
    assert!(stderr.contains("a usage error, not restarting"), "{stderr}");
}

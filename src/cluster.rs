//! What a cluster process does when it loses a peer.
//!
//! timely's networking has no recovery: when a peer process dies (kill -9, a crash, a host
//! going away), the thread that talks to it — `timely:recv-I` or `timely:send-I` for peer
//! `I` — panics with a message starting `timely communication error:`, and the workers
//! then panic on poisoned queues. Left alone that is a page of stack traces and exit 101
//! for what is an operational event with a simple remedy: start the cluster again, and it
//! resumes from the progress committed with the results.
//!
//! So cluster runs install a panic hook that recognizes that panic, prints one line naming
//! the lost peer and the remedy, and exits 1 before any unwinding (hence before any queue
//! is poisoned and any other thread panics). Exiting with the sink writer mid-transaction
//! is safe: SQLite and PostgreSQL commit atomically, and a restart resumes from the last
//! commit. Every other panic keeps the default behaviour.

use std::io::Write;
use std::panic::PanicHookInfo;
use std::sync::atomic::{AtomicBool, Ordering};

/// How timely_communication's send and receive threads start their panic messages
/// (`tcp_panic` in `allocator/zero_copy/tcp.rs`; documented there as stable).
const COMMUNICATION_ERROR: &str = "timely communication error:";

/// Set once the first lost-peer panic is being reported: the process is exiting, so later
/// panics (another connection failing at the same moment) stay silent.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// From now on, a lost connection to a peer stops this process with one line on stderr and
/// exit code 1. `addresses` are the cluster's, indexed by process.
pub fn stop_on_lost_peer(addresses: Vec<String>) {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info: &PanicHookInfo<'_>| {
        let thread = std::thread::current();
        let line =
            message(info).and_then(|message| lost_peer_line(message, thread.name(), &addresses));
        let Some(line) = line else {
            if !STOPPING.load(Ordering::SeqCst) {
                default(info);
            }
            return;
        };
        if STOPPING.swap(true, Ordering::SeqCst) {
            // Another thread is already reporting and exiting; don't race it to exit().
            loop {
                std::thread::park();
            }
        }
        // Not eprintln!: a panic inside the hook (stderr closed) would abort instead.
        let _ = writeln!(std::io::stderr(), "{line}");
        std::process::exit(1);
    }));
}

fn message<'a>(info: &'a PanicHookInfo<'_>) -> Option<&'a str> {
    let payload = info.payload();
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
}

/// The line to print for a panic with `message` on the thread named `thread`, if it is
/// timely's report of a lost connection.
fn lost_peer_line(message: &str, thread: Option<&str>, addresses: &[String]) -> Option<String> {
    let detail = message.strip_prefix(COMMUNICATION_ERROR)?.trim();
    // "reading data: socket closed" → "socket closed": the operation adds nothing for a user.
    let cause = detail
        .split_once(": ")
        .map_or(detail, |(_, cause)| cause)
        .trim();
    let peer = thread
        .and_then(|name| {
            name.strip_prefix("timely:recv-")
                .or_else(|| name.strip_prefix("timely:send-"))
        })
        .and_then(|index| index.parse::<usize>().ok());
    let who = match peer {
        Some(index) => match addresses.get(index) {
            Some(address) => format!("process {index} ({address})"),
            None => format!("process {index}"),
        },
        None => "a process".to_owned(),
    };
    let cause = if cause.is_empty() {
        String::new()
    } else {
        format!(" ({cause})")
    };
    Some(format!(
        "tickflow: error: lost the connection to {who} of the cluster{cause}; stopping. \
         Start every process again with the same command to resume from the committed \
         results (scripts/cluster.sh restarts the cluster by itself)."
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addresses() -> Vec<String> {
        vec!["127.0.0.1:40122".to_owned(), "127.0.0.1:40123".to_owned()]
    }

    #[test]
    fn a_closed_socket_names_the_peer_its_address_and_the_cause() {
        let line = lost_peer_line(
            "timely communication error: reading data: socket closed",
            Some("timely:recv-1"),
            &addresses(),
        )
        .expect("recognized");
        assert!(
            line.starts_with(
                "tickflow: error: lost the connection to process 1 (127.0.0.1:40123) of the \
                 cluster (socket closed); stopping. Start every process again"
            ),
            "{line}"
        );
        assert!(!line.contains('\n'), "one line: {line}");
    }

    #[test]
    fn a_failed_send_names_the_peer_too() {
        let line = lost_peer_line(
            "timely communication error: writing data: Broken pipe (os error 32)",
            Some("timely:send-0"),
            &addresses(),
        )
        .expect("recognized");
        assert!(
            line.contains("process 0 (127.0.0.1:40122) of the cluster (Broken pipe (os error 32))"),
            "{line}"
        );
    }

    #[test]
    fn an_unknown_thread_still_gets_the_line() {
        let line = lost_peer_line(
            "timely communication error: flushing writer: Connection reset by peer",
            Some("worker-3"),
            &addresses(),
        )
        .expect("recognized");
        assert!(
            line.contains(
                "lost the connection to a process of the cluster (Connection reset by peer)"
            ),
            "{line}"
        );
    }

    #[test]
    fn other_panics_are_not_taken_for_a_lost_peer() {
        assert_eq!(
            lost_peer_line("MergeQueue poisoned.", Some("timely:recv-1"), &addresses()),
            None
        );
        assert_eq!(
            lost_peer_line("index out of bounds", Some("worker-0"), &addresses()),
            None
        );
    }
}

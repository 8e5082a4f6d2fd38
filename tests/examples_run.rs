//! The examples run to completion and show what they are there to show. (`cargo test`
//! builds the examples next to the test binaries.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[cfg(feature = "nats")]
mod common;

use std::{path::PathBuf, process::Command};

/// Runs example `name` built by this `cargo test` and returns its standard output.
fn run_example(name: &str) -> String {
    run_example_with(name, &[])
}

/// [`run_example`] with environment variables.
fn run_example_with(name: &str, env: &[(&str, String)]) -> String {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<this test> → target/<profile>/examples/<name>
    let example: PathBuf = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("examples").join(name))
        .unwrap();
    let output = Command::new(&example)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", example.display()));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{name} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn the_counter_example_shows_calls_state_errors_events_and_topics() {
    let out = run_example("counter");
    for shown in [
        "increment(5) -> 5",
        "my state: State { name: \"alice\", last_op: \"+5\" }",
        "handler error: cannot subtract 10 from 3",
        "[bob] event on `counter`: Changed { by: \"alice\", value: 5 }",
        "[bob] event on `counter`: Changed { by: \"the server\", value: 3 }",
        "[server] Some(Created(Topic(\"counter\")))",
        "[server] Some(Removed(Topic(\"counter\")))",
        "done",
    ] {
        assert!(
            out.contains(shown),
            "the counter example did not show `{shown}`:\n{out}"
        );
    }
}

#[test]
fn the_inbox_example_delivers_to_an_offline_recipient_and_drops_the_expired_message() {
    let out = run_example("inbox");
    let lunch = out.find("[bob] alice says \"lunch at noon?\" (attempt 1");
    let later = out.find("[bob] alice says \"see you\"");
    assert!(
        lunch.is_some() && later > lunch && !out.contains("knock knock\" ("),
        "{out}"
    );
    assert!(out.contains("done"), "{out}");
}

#[test]
fn the_event_log_example_redelivers_the_unacked_event_after_a_restart() {
    let out = run_example("event_log");
    for shown in [
        "[worker] may not publish to payroll",
        "[worker] processed created order 1 (attempt 1)",
        "[worker] processed paid order 1 (attempt 1)",
        "[worker] redelivered: shipped order 1 (attempt 2, redelivery: true",
        "done",
    ] {
        assert!(out.contains(shown), "missing `{shown}`:\n{out}");
    }
    assert_eq!(out.matches("redelivered:").count(), 1, "{out}");
}

#[test]
fn the_chat_example_delivers_every_message() {
    let out = run_example("chat");
    assert!(out.contains("[ada] said hello to 3 members"), "{out}");
}

#[cfg(feature = "nats")]
#[tokio::test]
async fn the_cluster_example_carries_every_message_to_every_server() {
    let Some(nats) = common::nats::NatsServer::start().await else {
        return;
    };
    // the example's NATS connections go through the proxy, a task of this runtime
    let url = nats.url();
    let out =
        tokio::task::spawn_blocking(move || run_example_with("cluster", &[("NATS_URL", url)]))
            .await
            .unwrap();
    for name in ["ada", "grace", "linus"] {
        for from in ["ada", "grace", "linus"] {
            let line = format!("[{name}] {from}: hello from {from}");
            assert!(out.contains(&line), "missing `{line}`:\n{out}");
        }
    }
    assert!(out.contains("done"), "{out}");
}

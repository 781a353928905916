//! Short runs of every scenario of the load tool against the real server (small numbers, a
//! few seconds each): each must finish, report what it did in its JSON line, and lose nothing.

use std::process::Command;

use reverb_pusher_tests::TestServer;
use serde_json::Value;

/// Runs the bench binary with the app's credentials and returns its JSON line.
async fn bench(server: &TestServer, args: &[&str]) -> Value {
    let mut command = Command::new(env!("CARGO_BIN_EXE_reverb-pusher-bench"));
    command
        .arg("--url")
        .arg(server.http_url(""))
        .args(["--app-id", &server.app.id, "--key", &server.app.key])
        .args(["--secret", &server.app.secret])
        .args(["--server-pid", &std::process::id().to_string()])
        .args(args);
    json_line(command).await
}

/// Runs the bench binary without a server (the floors) and returns its JSON line.
async fn bench_alone(args: &[&str]) -> Value {
    let mut command = Command::new(env!("CARGO_BIN_EXE_reverb-pusher-bench"));
    command.args(args);
    json_line(command).await
}

/// Runs `command`, which must succeed, and parses the last line it prints.
async fn json_line(mut command: Command) -> Value {
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("the bench binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = stdout.lines().last().expect("a JSON line");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

#[actix_rt::test]
async fn every_scenario_runs_against_the_server() {
    let server = TestServer::start().await;

    let run = bench(
        &server,
        &[
            "connections",
            "--connections",
            "200",
            "--rate",
            "1000",
            "--channels",
            "2",
            "--hold",
            "1",
        ],
    )
    .await;
    assert_eq!(
        (run["opened"].as_u64(), run["failed"].as_u64()),
        (Some(200), Some(0)),
        "{run}"
    );
    assert_eq!(run["dropped"], 0, "{run}");
    assert!(run["rss_per_connection_bytes"].is_number(), "{run}");

    let run = bench(
        &server,
        &[
            "fanout",
            "--subscribers",
            "100",
            "--channels",
            "4",
            "--publishers",
            "2",
            "--rate",
            "40",
            "--duration",
            "1",
        ],
    )
    .await;
    assert!(run["published"].as_u64().unwrap() > 10, "{run}");
    assert_eq!(
        run["delivered"], run["expected"],
        "every delivery arrived: {run}"
    );
    assert_eq!(
        run["delivered"].as_u64(),
        run["latency"]["count"].as_u64(),
        "one latency per delivery: {run}"
    );
    assert!(run["latency"]["p50_us"].as_f64().unwrap() > 0.0, "{run}");

    let run = bench(
        &server,
        &[
            "http",
            "--concurrency",
            "4",
            "--duration",
            "1",
            "--mix-get-channels",
        ],
    )
    .await;
    assert!(run["ok"].as_u64().unwrap() > 10, "{run}");
    assert_eq!(run["errors"], 0, "{run}");

    let run = bench(&server, &["churn", "--rate", "50", "--duration", "1"]).await;
    assert!(run["cycles"].as_u64().unwrap() >= 40, "{run}");
    assert_eq!(
        (run["failed"].as_u64(), run["leftover_channels"].as_u64()),
        (Some(0), Some(0)),
        "{run}"
    );
}

/// `abuse`: a second app with tight limits floods the server while the test app's fan-out is
/// measured; the flood is refused by those limits and the measured app loses nothing.
#[actix_rt::test]
async fn the_abuse_scenario_measures_one_app_while_another_is_refused() {
    let server = TestServer::start().await;
    let mut abuser = server.app.clone();
    abuser.id = "424242".into();
    abuser.key = "abuser-key".into();
    abuser.name = "abuser".into();
    abuser.limits.max_backend_events_per_second = 20;
    abuser.limits.max_new_connections_per_second = 5;
    let abuser = server.server.add_app(abuser).await.expect("abuser app");
    let run = bench(
        &server,
        &[
            "abuse",
            "--abuser-app-id",
            &abuser.id,
            "--abuser-key",
            &abuser.key,
            "--abuser-secret",
            &abuser.secret,
            "--subscribers",
            "50",
            "--rate",
            "20",
            "--duration",
            "1",
            "--concurrency",
            "4",
            "--connectors",
            "2",
        ],
    )
    .await;
    for phase in ["quiet", "flooded"] {
        assert_eq!(
            run[phase]["delivered"], run[phase]["expected"],
            "{phase}: every delivery arrived: {run}"
        );
        assert!(run[phase]["published"].as_u64().unwrap() > 5, "{run}");
    }
    let flood = &run["flood"];
    assert!(flood["requests_limited"].as_u64().unwrap() > 0, "{run}");
    assert!(flood["connections_refused"].as_u64().unwrap() > 0, "{run}");
    assert!(run["p99_ratio"].as_f64().unwrap() > 0.0, "{run}");
}

/// `floor` needs no server: it writes to loopback connections it opened to itself.
#[actix_rt::test]
async fn the_floor_scenario_counts_every_write_it_delivers() {
    let run = bench_alone(&[
        "--source-addresses",
        "2",
        "floor",
        "--connections",
        "40",
        "--writers",
        "2",
        "--rate",
        "20",
        "--duration",
        "1",
    ])
    .await;
    assert_eq!(run["accepted"], 40, "{run}");
    let writes = run["writes"].as_u64().unwrap();
    // 20 rounds a second for one second over 40 connections, give or take a round.
    assert!((40 * 15..=40 * 22).contains(&writes), "{run}");
    assert_eq!(run["write_errors"], 0, "{run}");
    assert_eq!(run["delivered"].as_u64(), Some(writes), "{run}");
    assert_eq!(run["latency"]["count"].as_u64(), Some(writes), "{run}");
    assert_eq!(run["dropped"], 0, "{run}");
    assert!(run["writer_cpu_us_per_write"].is_number(), "{run}");
}

/// `http-floor` starts its own bare server as a child process, measures it and stops it.
#[actix_rt::test]
async fn the_http_floor_scenario_measures_a_bare_server() {
    let run = bench_alone(&["http-floor", "--concurrency", "4", "--duration", "1"]).await;
    assert_eq!(run["scenario"], "http-floor", "{run}");
    assert!(run["ok"].as_u64().unwrap() > 10, "{run}");
    assert_eq!(run["errors"], 0, "{run}");
    assert!(run["server_cpu_us_per_request"].is_number(), "{run}");
}

/// `ws-floor` runs the unchanged `connections` and `churn` scenarios against its own bare
/// WebSocket server: every connection is established and subscribed, idle ones are pinged and
/// answer, and every cycle completes, with the bare server's CPU time read from `/proc`.
#[actix_rt::test]
async fn the_ws_floor_scenarios_run_against_a_bare_server() {
    let run = bench_alone(&[
        "--source-addresses",
        "2",
        "ws-floor",
        "--activity-timeout",
        "1",
        "connections",
        "--connections",
        "100",
        "--rate",
        "1000",
        "--hold",
        "2",
    ])
    .await;
    assert_eq!(
        (run["floor"].as_str(), run["scenario"].as_str()),
        (Some("ws-floor"), Some("connections")),
        "{run}"
    );
    assert_eq!(
        (
            run["opened"].as_u64(),
            run["failed"].as_u64(),
            run["dropped"].as_u64()
        ),
        (Some(100), Some(0), Some(0)),
        "{run}"
    );
    assert!(
        run["pings_answered"].as_u64().unwrap() >= 100,
        "every idle connection was pinged: {run}"
    );
    assert!(run["server_cpu_us"].is_number(), "{run}");

    let run = bench_alone(&["ws-floor", "churn", "--rate", "50", "--duration", "1"]).await;
    assert_eq!(run["floor"], "ws-floor", "{run}");
    assert!(run["cycles"].as_u64().unwrap() >= 40, "{run}");
    assert_eq!(run["failed"], 0, "{run}");
    assert!(run["server_cpu_us"].is_number(), "{run}");
}

#[actix_rt::test]
async fn wrong_credentials_are_reported_not_hidden() {
    let server = TestServer::start().await;
    let mut command = Command::new(env!("CARGO_BIN_EXE_reverb-pusher-bench"));
    command
        .arg("--url")
        .arg(server.http_url(""))
        .args([
            "--app-id",
            &server.app.id,
            "--key",
            &server.app.key,
            "--secret",
            "wrong",
        ])
        .args(["http", "--concurrency", "1", "--duration", "1"]);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let run: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(run["ok"], 0, "{run}");
    assert!(run["errors"].as_u64().unwrap() > 0, "{run}");
}

//! The daemon's Prometheus metrics and probes, end to end: served inside the translator's
//! namespace, linted by `promtool check metrics`, and scraped by a real Prometheus server.

use std::{
    io::Write as _,
    net::SocketAddr,
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use nat64_tests::{
    lab::{CLIENT6_AS_V4, Lab, LabOptions, POOL4, SERVER4_AS_V6, STATEFUL_CLIENTS, ping},
    peers,
};

const METRICS: &str = "127.0.0.1:9464";

fn lab_with_traffic() -> Lab {
    nat64_tests::require_root();
    let mut lab = Lab::new(LabOptions {
        stateful: true,
        ..LabOptions::default()
    });
    lab.start_daemon();
    let (ok, text) = ping(&lab.client6, &SERVER4_AS_V6.to_string(), 2);
    assert!(ok, "{text}");
    let (ok, text) = ping(&lab.server4, &CLIENT6_AS_V4.to_string(), 2);
    assert!(ok, "{text}");
    lab
}

fn get(lab: &Lab, path: &str) -> (u16, String) {
    let addr: SocketAddr = METRICS.parse().unwrap();
    lab.xlat
        .run(|| peers::http_get(addr, path))
        .unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", lab.daemon_log()))
}

/// The value of the series `name` (with its labels exactly as written) in an exposition.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
}

#[test]
fn metrics_and_probes_are_served_and_pass_promtool() {
    let lab = lab_with_traffic();
    let (status, body) = get(&lab, "/healthz");
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let (status, _) = get(&lab, "/readyz");
    assert_eq!(status, 200);
    let (status, text) = get(&lab, "/metrics");
    assert_eq!(status, 200, "{text}");
    for dir in ["6to4", "4to6"] {
        let series =
            format!("nat64_translated_packets_total{{direction=\"{dir}\",protocol=\"icmp\"}}");
        assert!(
            value(&text, &series).unwrap_or(0.0) >= 2.0,
            "{series} in:\n{text}"
        );
    }
    assert!(
        value(
            &text,
            "nat64_dropped_packets_total{direction=\"4to6\",reason=\"no_binding\"}"
        )
        .is_some(),
        "every drop reason is exported, zero or not:\n{text}"
    );
    assert_eq!(value(&text, "nat64_attached_programs"), Some(4.0), "{text}");
    assert_eq!(
        value(
            &text,
            "nat64_icmp_errors_generated_total{type=\"address_unreachable\"}"
        ),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "nat64_binding_table_size"),
        Some(65536.0),
        "{text}"
    );
    assert!(
        value(&text, "nat64_sweep_duration_seconds").is_some_and(|v| v >= 0.0),
        "{text}"
    );
    assert!(text.contains("nat64_build_info{version=\""), "{text}");
    for reason in ["pool_exhausted", "table_full", "client_limit"] {
        let series = format!("nat64_session_creation_failures_total{{reason=\"{reason}\"}}");
        assert_eq!(value(&text, &series), Some(0.0), "{series} in:\n{text}");
    }

    // pool4 usage: a stateful client pings once (an ICMP binding); the next sweep counts its
    // identifier in use. pool4 is a /30 with ports 20000-29999: 40000 per protocol.
    let out = lab.client6.output(
        "ping",
        &[
            "-6",
            "-n",
            "-c",
            "1",
            "-W",
            "2",
            "-I",
            &STATEFUL_CLIENTS[0].to_string(),
            &SERVER4_AS_V6.to_string(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let used = format!("nat64_pool4_ports_in_use{{prefix=\"{POOL4}\",protocol=\"icmp\"}}");
    let free = format!("nat64_pool4_ports_free{{prefix=\"{POOL4}\",protocol=\"icmp\"}}");
    // (Bound ports stay in use after their binding expires, held down for two minutes.)
    let live = "nat64_bindings{protocol=\"icmp\"}";
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let (_, text) = get(&lab, "/metrics");
        if value(&text, live).unwrap_or(0.0) >= 1.0 {
            break text;
        }
        assert!(Instant::now() < deadline, "{live} never 1:\n{text}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let n = value(&text, &used).unwrap_or(0.0);
    assert!(n >= 1.0, "{text}");
    assert_eq!(value(&text, &free), Some(40000.0 - n), "{text}");
    let tcp_free = format!("nat64_pool4_ports_free{{prefix=\"{POOL4}\",protocol=\"tcp\"}}");
    assert_eq!(value(&text, &tcp_free), Some(40000.0), "{text}");

    // The exposition format, checked by Prometheus' own linter.
    let mut lint = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (cargo xtask setup installs the prometheus package)");
    lint.stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = lint.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Kills the Prometheus server when the test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_real_prometheus_scrapes_the_daemon() {
    let lab = lab_with_traffic();
    let dir = std::env::temp_dir().join(format!("{}-prometheus", lab.xlat.name()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: nat64d\n    static_configs:\n      - targets: ['{METRICS}']\n"
        ),
    )
    .unwrap();
    let _server = Server(
        lab.xlat
            .command("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg("--web.listen-address=127.0.0.1:9090")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus (cargo xtask setup installs it)"),
    );
    let query = "/api/v1/query?query=nat64_translated_packets_total%7Bdirection%3D%226to4%22%2Cprotocol%3D%22icmp%22%7D";
    let api: SocketAddr = "127.0.0.1:9090".parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut last = String::new();
    loop {
        if let Ok((200, body)) = lab.xlat.run(|| peers::http_get(api, query)) {
            // {"status":"success","data":{"resultType":"vector","result":[{"metric":{...},"value":[<time>,"2"]}]}}
            if let Some(v) = body
                .split_once("\"value\":[")
                .and_then(|(_, rest)| rest.split_once(",\""))
                .and_then(|(_, rest)| rest.split('"').next())
                .and_then(|v| v.parse::<f64>().ok())
                && body.contains("\"job\":\"nat64d\"")
            {
                assert!(v >= 2.0, "scraped value {v}: {body}");
                break;
            }
            last = body;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus has no sample of the daemon's counter after 40 s; last answer: {last}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

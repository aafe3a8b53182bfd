//! The deployment files, checked offline the way a cluster would take them: every kustomize
//! overlay renders (`kubectl kustomize`), the result passes the Kubernetes API schemas
//! (`kubernetes-validate --strict`) and `checkov` with every skipped check justified and really
//! needed, the alert rules pass `promtool check rules`, the configuration files pass
//! `nat64d check-config`, and the dashboard and alerts name only metrics the daemon exports.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn overlays() -> Vec<PathBuf> {
    let dir = repo().join("deploy/kubernetes/overlays");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    assert!(v.len() >= 2, "the ingress NAT64 and node NAT46 overlays");
    v
}

/// Runs a tool that must be there (`cargo xtask setup` installs it): its status and output.
fn tool(cmd: &mut Command) -> (bool, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?} cannot run ({e}); `cargo xtask setup` installs it"));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Renders an overlay into a file of its own (per test: `tag`); the file's path and text.
fn render(overlay: &Path, tag: &str) -> (PathBuf, String) {
    let (ok, text) = tool(Command::new("kubectl").arg("kustomize").arg(overlay));
    assert!(ok, "kubectl kustomize {}:\n{text}", overlay.display());
    let name = overlay.file_name().unwrap().to_string_lossy().into_owned();
    let path = std::env::temp_dir().join(format!(
        "nat64-deploy-{}-{tag}-{name}.yaml",
        std::process::id()
    ));
    std::fs::write(&path, &text).unwrap();
    (path, text)
}

#[test]
fn every_overlay_renders_and_passes_the_api_schemas() {
    for overlay in overlays() {
        let (path, text) = render(&overlay, "schemas");
        for kind in [
            "Namespace",
            "ServiceAccount",
            "ConfigMap",
            "DaemonSet",
            "PodMonitor",
            "PrometheusRule",
        ] {
            assert!(
                text.contains(&format!("\nkind: {kind}\n")),
                "{}: no {kind}",
                overlay.display()
            );
        }
        for version in ["1.32.0", "1.37.0"] {
            let (ok, report) = tool(
                Command::new("kubernetes-validate")
                    .args(["--strict", "-k", version])
                    .arg(&path),
            );
            assert!(ok, "{} against {version}:\n{report}", overlay.display());
            for res in [
                "namespace/nat64-system",
                "serviceaccount/nat64d",
                "configmap/nat64d-config",
                "daemonset/nat64d",
            ] {
                assert!(
                    report.contains(&format!("passed for resource {res}")),
                    "{res}:\n{report}"
                );
            }
            // The Prometheus Operator's kinds have no schema offline; nothing else may lack one.
            for line in report.lines().filter(|l| l.starts_with("WARN")) {
                assert!(line.contains("monitoring.coreos.com/v1"), "{line}");
            }
        }
        let _ = std::fs::remove_file(&path);
    }
}

/// The checks `checkov` reports failed in `file`.
fn checkov_failures(file: &Path) -> (BTreeSet<String>, String) {
    let (_, report) = tool(
        Command::new("checkov")
            .args([
                "--quiet",
                "--compact",
                "--skip-download",
                "--framework",
                "kubernetes",
                "-f",
            ])
            .arg(file),
    );
    let failed = report
        .lines()
        .filter_map(|l| l.strip_prefix("Check: "))
        .filter_map(|l| l.split(':').next())
        .map(str::to_string)
        .collect();
    (failed, report)
}

#[test]
fn checkov_passes_with_every_skip_justified_and_needed() {
    for overlay in overlays() {
        let (path, text) = render(&overlay, "checkov");
        let (failed, report) = checkov_failures(&path);
        assert!(failed.is_empty(), "{}:\n{report}", overlay.display());
        assert!(report.contains("Failed checks: 0"), "{report}");
        // Each skip names a check and says why.
        let skips: BTreeSet<String> = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("checkov.io/skip"))
            .map(|l| {
                let (_, v) = l.split_once(": ").expect("checkov.io/skipN: ID=reason");
                let (id, why) = v.split_once('=').expect("ID=reason");
                assert!(
                    why.split_whitespace().count() >= 5,
                    "{id} skipped without a reason: {why:?}"
                );
                id.to_string()
            })
            .collect();
        assert!(!skips.is_empty());
        // And each is needed: without the annotations exactly those checks fail.
        let bare = path.with_extension("noskip.yaml");
        let stripped: String = text
            .lines()
            .filter(|l| !l.trim().starts_with("checkov.io/skip"))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(&bare, stripped).unwrap();
        let (failed, report) = checkov_failures(&bare);
        assert_eq!(
            failed, skips,
            "skipped checks that pass, or failures not skipped:\n{report}"
        );
        let _ = std::fs::remove_file(&bare);
        let _ = std::fs::remove_file(&path);
    }
}

#[test]
fn the_daemonset_grants_exactly_the_capabilities_the_privileges_test_proves() {
    let text =
        std::fs::read_to_string(repo().join("deploy/kubernetes/base/daemonset.yaml")).unwrap();
    assert!(text.contains("drop: [\"ALL\"]"), "{text}");
    assert!(
        text.contains("add: [\"BPF\", \"NET_ADMIN\", \"PERFMON\"]"),
        "{text}"
    );
    assert!(text.contains("privileged: false") && text.contains("readOnlyRootFilesystem: true"));
    assert!(text.contains("type: RuntimeDefault") && text.contains("hostNetwork: true"));
    let test = std::fs::read_to_string(repo().join("tests/tests/privileges.rs")).unwrap();
    assert!(test.contains("const CAPS: &str = \"+bpf,+net_admin,+perfmon\";"));
}

#[test]
fn the_alert_rules_pass_promtool_and_the_prometheusrule_carries_the_same() {
    let rules = repo().join("deploy/monitoring/nat64d-alerts.yaml");
    let (ok, report) = tool(
        Command::new("promtool")
            .args(["check", "rules"])
            .arg(&rules),
    );
    assert!(ok && report.contains("SUCCESS"), "{report}");
    // PyYAML comes with checkov; compare the parsed documents, not the text.
    let cr = repo().join("deploy/kubernetes/components/prometheus-operator/prometheusrule.yaml");
    let (ok, report) = tool(Command::new("python3").args([
        "-c",
        "import sys, yaml\n\
         rules = yaml.safe_load(open(sys.argv[1]))\n\
         cr = yaml.safe_load(open(sys.argv[2]))\n\
         assert cr['kind'] == 'PrometheusRule', cr['kind']\n\
         assert cr['spec'] == rules, 'the PrometheusRule differs from the rule file'\n\
         print(len(rules['groups'][0]['rules']), 'rules')",
        rules.to_str().unwrap(),
        cr.to_str().unwrap(),
    ]));
    assert!(ok, "{report}");
}

#[test]
fn every_configuration_file_passes_check_config() {
    let mut files = vec![
        repo().join("deploy/nat64d.toml"),
        repo().join("deploy/kubernetes/base/nat64d.toml"),
    ];
    for overlay in overlays() {
        for e in std::fs::read_dir(overlay).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "toml") {
                files.push(p);
            }
        }
    }
    assert!(files.len() >= 5, "{files:?}");
    for f in files {
        let out = Command::new(nat64_tests::nat64d_path())
            .args(["check-config", "--skip-interface-check"])
            .arg(&f)
            .output()
            .expect("nat64d check-config");
        assert!(
            out.status.success(),
            "{}: {}",
            f.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The metric families the daemon exports (stateful on, so that every family is there).
fn exported_families() -> BTreeSet<String> {
    let cfg =
        nat64_daemon::Config::parse("[stateful]\npool4 = \"203.0.113.0/30\"\n", "test").unwrap();
    let stats = nat64_daemon::stats::Stats::from_values(vec![
        0;
        nat64_common::counters::STATS_LEN
            as usize
    ]);
    let snap = nat64_daemon::metrics::Snapshot {
        stats: &stats,
        bindings: Some(Default::default()),
        max_bindings: 1,
        sweep_seconds: 0.0,
        attached: 1,
        stateful: cfg.stateful.as_ref(),
        binding_events: Default::default(),
    };
    nat64_daemon::metrics::render(&snap)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// The `nat64_*` names in a query text.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("nat64_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

#[test]
fn the_dashboard_and_the_alerts_use_only_exported_metrics() {
    let exported = exported_families();
    assert!(exported.contains("nat64_pool4_ports_free"), "{exported:?}");
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("deploy/monitoring/nat64d-dashboard.json")).unwrap(),
    )
    .expect("the dashboard is JSON");
    let mut used = BTreeSet::new();
    for panel in dash["panels"].as_array().expect("panels") {
        for t in panel["targets"].as_array().expect("targets") {
            used.extend(metric_names(t["expr"].as_str().expect("expr")));
        }
    }
    let alerts =
        std::fs::read_to_string(repo().join("deploy/monitoring/nat64d-alerts.yaml")).unwrap();
    used.extend(metric_names(&alerts));
    assert!(used.len() >= 10, "{used:?}");
    let unknown: Vec<_> = used.difference(&exported).collect();
    assert!(
        unknown.is_empty(),
        "not exported by the daemon: {unknown:?}"
    );
}

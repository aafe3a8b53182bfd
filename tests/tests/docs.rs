//! The references in `docs/` against the code, so that they cannot drift: the configuration
//! reference against the configuration types (every key, and its default), the metrics
//! reference against what the daemon exports (family, type, labels), and the troubleshooting
//! page against the dataplane's drop reasons.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
};

use nat64_common::DropReason;
use nat64_daemon::Config;

fn read(rel: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The rows of the Markdown tables in `text` whose first cell is `code`: cells, trimmed (no
/// cell of these tables holds a '|').
fn table_rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            l.trim()
                .trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

fn unquote(cell: &str) -> &str {
    cell.trim_matches('`')
}

/// `KEY = VALUE` lines of the TOML the daemon writes (`Config::to_toml`), as dotted paths with
/// `[]` for arrays of tables: key to value.
fn flatten(toml: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut prefix = String::new();
    for line in toml.lines() {
        let line = line.trim();
        if let Some(t) = line.strip_prefix("[[").and_then(|l| l.strip_suffix("]]")) {
            prefix = format!("{t}[].");
        } else if let Some(t) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            prefix = format!("{t}.");
        } else if let Some((k, v)) = line.split_once(" = ") {
            out.insert(format!("{prefix}{k}"), v.to_string());
        }
    }
    out
}

#[test]
fn the_configuration_reference_lists_every_key_with_its_default() {
    let doc = read("docs/configuration.md");
    let rows = table_rows(&doc);
    let documented: BTreeMap<String, String> = rows
        .iter()
        .map(|r| (unquote(&r[0]).to_string(), r[1].clone()))
        .collect();
    // Every key: the example file sets them all.
    let full = Config::parse(&read("deploy/nat64d.toml"), "deploy/nat64d.toml").unwrap();
    let keys: BTreeSet<String> = flatten(&full.to_toml()).into_keys().collect();
    let doc_keys: BTreeSet<String> = documented.keys().cloned().collect();
    assert_eq!(
        doc_keys, keys,
        "docs/configuration.md and the configuration types disagree on the keys"
    );
    // Defaults: the smallest configuration that has every table, written out.
    let minimal = Config::parse(
        "[[interfaces]]\nname = \"x\"\n[[eam]]\nipv6 = \"2001:db8::/120\"\nipv4 = \"198.51.100.0/24\"\n\
         [stateful]\npool4 = \"203.0.113.0/30\"\n[[stateful.static]]\nprotocol = \"tcp\"\n\
         ipv6 = \"[2001:db8::5]:80\"\nipv4 = \"203.0.113.1:80\"\n\
         [stateful.deterministic]\nclients = \"2001:db8:6::/60\"\n",
        "minimal",
    )
    .unwrap();
    let required = [
        "interfaces[].name",
        "eam[].ipv6",
        "eam[].ipv4",
        "stateful.pool4",
        "stateful.static[].protocol",
        "stateful.static[].ipv6",
        "stateful.static[].ipv4",
        "stateful.deterministic.clients",
    ];
    let defaults = flatten(&minimal.to_toml());
    for (key, cell) in &documented {
        let want = if required.contains(&key.as_str()) {
            "required".to_string()
        } else {
            match defaults.get(key) {
                Some(v) => format!("`{v}`"),
                None => "none".to_string(),
            }
        };
        assert_eq!(cell, &want, "default of {key} in docs/configuration.md");
    }
    // Each reload cell says yes or restart.
    for r in &rows {
        assert!(r[2] == "yes" || r[2] == "restart", "{r:?}");
    }
}

#[test]
fn the_metrics_reference_matches_what_the_daemon_exports() {
    let cfg = Config::parse("[stateful]\npool4 = \"203.0.113.0/30\"\n", "test").unwrap();
    let stats = nat64_daemon::stats::Stats::from_values(vec![
        0;
        nat64_common::counters::STATS_LEN
            as usize
    ]);
    let text = nat64_daemon::metrics::render(&nat64_daemon::metrics::Snapshot {
        stats: &stats,
        bindings: Some(Default::default()),
        max_bindings: 1,
        sweep_seconds: 0.0,
        attached: 1,
        stateful: cfg.stateful.as_ref(),
        binding_events: Default::default(),
    })
    .unwrap();
    // family -> (type, label names of its first sample)
    let mut exported: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
    for line in text.lines() {
        if let Some(t) = line.strip_prefix("# TYPE ") {
            let (name, kind) = t.split_once(' ').unwrap();
            exported.insert(name.to_string(), (kind.to_string(), Vec::new()));
        } else if !line.starts_with('#') {
            let name = line.split(['{', ' ']).next().unwrap();
            if let Some((_, labels)) = exported.get_mut(name)
                && labels.is_empty()
                && let Some(inner) = line.split_once('{').and_then(|(_, r)| r.split_once('}'))
            {
                *labels = inner
                    .0
                    .split(',')
                    .filter_map(|kv| kv.split_once('=').map(|(k, _)| k.to_string()))
                    .collect();
                labels.sort();
            }
        }
    }
    let doc = read("docs/metrics.md");
    let mut documented = BTreeMap::new();
    for r in table_rows(&doc) {
        let mut labels: Vec<String> = r[2]
            .split(", ")
            .map(unquote)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        labels.sort();
        documented.insert(unquote(&r[0]).to_string(), (r[1].clone(), labels));
    }
    assert_eq!(
        documented, exported,
        "docs/metrics.md and the daemon's exposition disagree"
    );
}

#[test]
fn the_troubleshooting_page_explains_every_drop_reason() {
    let doc = read("docs/troubleshooting.md");
    let documented: BTreeSet<String> = table_rows(&doc)
        .iter()
        .map(|r| unquote(&r[0]).to_string())
        .collect();
    let reasons: BTreeSet<String> = DropReason::ALL
        .iter()
        .map(|r| r.name().to_string())
        .collect();
    assert_eq!(documented, reasons);
}

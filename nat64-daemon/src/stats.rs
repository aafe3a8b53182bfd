//! A snapshot of the dataplane's counters and its text form. The names and labels are those
//! the Prometheus exporter will use, so the log and the metrics say the same thing.

use std::fmt::Write as _;

use nat64_common::{Counter, Dir, DropReason, Generated, Handoff, L4Proto, counters::STATS_LEN};

/// Counter values summed over CPUs, indexed by [`Counter::index`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    values: Vec<u64>,
}

impl Stats {
    pub fn from_values(values: Vec<u64>) -> Self {
        assert_eq!(
            values.len(),
            STATS_LEN as usize,
            "one value per counter slot"
        );
        Self { values }
    }

    pub fn get(&self, c: Counter) -> u64 {
        self.values.get(c.index() as usize).copied().unwrap_or(0)
    }

    /// Packets translated in `dir`, all protocols.
    pub fn translated(&self, dir: Dir) -> u64 {
        L4Proto::ALL
            .iter()
            .map(|p| self.get(Counter::Packets(dir, *p)))
            .sum()
    }

    /// Packets dropped in `dir`, all reasons.
    pub fn dropped(&self, dir: Dir) -> u64 {
        DropReason::ALL
            .iter()
            .map(|r| self.get(Counter::Dropped(dir, *r)))
            .sum()
    }

    /// Every counter in exposition-style lines, `name{labels} value`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for c in all_counters() {
            let _ = writeln!(out, "{} {}", series(c), self.get(c));
        }
        out
    }

    /// The non-zero counters as a table for people: direction, counter, value.
    pub fn table(&self) -> String {
        let mut out = format!("{:<10} {:<44} {:>14}\n", "direction", "counter", "value");
        for c in all_counters().filter(|c| self.get(*c) != 0) {
            let (dir, what) = match c {
                Counter::Packets(d, p) => (d, format!("translated packets, {}", p.name())),
                Counter::Bytes(d) => (d, "translated bytes".to_string()),
                Counter::Dropped(d, r) => (d, format!("dropped, {}", r.name())),
                Counter::Handoff(d, h) => (d, format!("handed off, {}", h.name())),
                Counter::Forwarded(d) => (d, "forwarded from XDP".to_string()),
                Counter::Rfc6791(d) => (d, "ICMP errors with an RFC 6791 source".to_string()),
                Counter::RateLimited | Counter::EventsLost => {
                    let what = if c == Counter::RateLimited {
                        "ICMP errors not sent, rate limit"
                    } else {
                        "binding events lost, ring buffer full"
                    };
                    let _ = writeln!(out, "{:<10} {:<44} {:>14}", "-", what, self.get(c));
                    continue;
                }
                Counter::Generated(g) => {
                    let _ = writeln!(
                        out,
                        "{:<10} {:<44} {:>14}",
                        "-",
                        format!("ICMP errors generated, {}", g.name()),
                        self.get(c)
                    );
                    continue;
                }
            };
            let _ = writeln!(out, "{:<10} {:<44} {:>14}", dir.name(), what, self.get(c));
        }
        out
    }

    /// Every counter as one JSON object:
    /// `{"6to4": {"translated": {"tcp": 1, ...}, "bytes": 2, "dropped": {...}, "handed_off": {...}}, "4to6": {...}}`.
    /// The keys are the fixed snake_case names of `nat64_common::counters`, so no escaping is
    /// needed.
    pub fn json(&self) -> String {
        let obj = |items: Vec<(&str, u64)>| {
            let body: Vec<String> = items.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            format!("{{{}}}", body.join(","))
        };
        let dirs: Vec<String> = Dir::ALL
            .iter()
            .map(|&d| {
                let translated = obj(L4Proto::ALL
                    .iter()
                    .map(|&p| (p.name(), self.get(Counter::Packets(d, p))))
                    .collect());
                let dropped = obj(DropReason::ALL
                    .iter()
                    .map(|&r| (r.name(), self.get(Counter::Dropped(d, r))))
                    .collect());
                let handed = obj(Handoff::ALL
                    .iter()
                    .map(|&h| (h.name(), self.get(Counter::Handoff(d, h))))
                    .collect());
                format!(
                    "\"{}\":{{\"translated\":{translated},\"bytes\":{},\"dropped\":{dropped},\"handed_off\":{handed},\"forwarded_in_xdp\":{},\"icmp_errors_rfc6791\":{}}}",
                    d.name(),
                    self.get(Counter::Bytes(d)),
                    self.get(Counter::Forwarded(d)),
                    self.get(Counter::Rfc6791(d))
                )
            })
            .collect();
        let generated = obj(Generated::ALL
            .iter()
            .map(|&g| (g.name(), self.get(Counter::Generated(g))))
            .collect());
        format!(
            "{{{},\"icmp_errors_generated\":{generated},\"icmp_errors_rate_limited\":{},\"binding_events_lost\":{}}}\n",
            dirs.join(","),
            self.get(Counter::RateLimited),
            self.get(Counter::EventsLost)
        )
    }
}

/// Every counter, in slot order (`Counter::all`).
pub fn all_counters() -> impl Iterator<Item = Counter> {
    Counter::all()
}

/// The series name and labels of a counter, e.g.
/// `nat64_translated_packets_total{direction="6to4",protocol="tcp"}` (`Counter::series`).
pub fn series(c: Counter) -> String {
    let s = c.series();
    let labels: Vec<String> = s.labels().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    if labels.is_empty() {
        s.family.to_string()
    } else {
        format!("{}{{{}}}", s.family, labels.join(","))
    }
}

/// Reads the value of `c` back from text produced by [`Stats::render`] (used by tests and the
/// lab, which see the daemon only through its output).
pub fn parse_value(text: &str, c: Counter) -> Option<u64> {
    let name = series(c);
    text.lines().find_map(|l| {
        l.strip_prefix(name.as_str())
            .and_then(|v| v.trim().parse().ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_and_parse_round_trip() {
        let mut v = vec![0u64; STATS_LEN as usize];
        v[Counter::Packets(Dir::V4ToV6, L4Proto::Udp).index() as usize] = 7;
        v[Counter::Dropped(Dir::V6ToV4, DropReason::Fragment).index() as usize] = 3;
        let s = Stats::from_values(v);
        let text = s.render();
        assert_eq!(text.lines().count(), STATS_LEN as usize);
        assert_eq!(
            parse_value(&text, Counter::Packets(Dir::V4ToV6, L4Proto::Udp)),
            Some(7)
        );
        assert_eq!(
            parse_value(&text, Counter::Dropped(Dir::V6ToV4, DropReason::Fragment)),
            Some(3)
        );
        assert_eq!(parse_value(&text, Counter::Bytes(Dir::V6ToV4)), Some(0));
        assert_eq!(s.table().lines().count(), 3, "a header and two rows");
        let j = s.json();
        assert!(
            j.starts_with("{\"6to4\":{\"translated\":{\"tcp\":0,"),
            "{j}"
        );
        assert!(
            j.contains("\"4to6\":{\"translated\":{\"tcp\":0,\"udp\":7,"),
            "{j}"
        );
        assert!(j.contains("\"fragment\":3"), "{j}");
        assert_eq!(s.translated(Dir::V4ToV6), 7);
        assert_eq!(s.dropped(Dir::V6ToV4), 3);
    }
}

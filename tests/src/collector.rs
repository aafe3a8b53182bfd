//! A real IPFIX collector for the export tests: nfdump's `nfcapd` (from Debian; `cargo xtask
//! setup` installs it) on the translator node's loopback, port 4739, and its records read back
//! with `nfdump -o raw`.

use std::{collections::HashMap, path::PathBuf, process::Child, time::Duration};

use crate::lab::Lab;

/// The address the daemon exports to (`stateful.ipfix_collector`).
pub const COLLECTOR: &str = "127.0.0.1:4739";

/// A running `nfcapd`; killed if the test fails before it reads the records (a process
/// outlives its namespace).
pub struct Collector {
    child: Child,
    dir: PathBuf,
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One record as `nfdump -o raw` prints it: its "key = value" lines (the value's first word).
pub type Record = HashMap<String, String>;

impl Collector {
    /// Starts it in `lab`'s translator namespace and waits (bounded) until it listens, so that
    /// a daemon started next has every record seen from the first.
    pub fn start(lab: &Lab) -> Self {
        let dir = lab.dir().join("nfcapd");
        std::fs::create_dir_all(&dir).unwrap();
        let child = lab
            .xlat
            .command("nfcapd")
            .args(["-b", "127.0.0.1", "-p", "4739", "-t", "3600", "-w"])
            .arg(&dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("nfcapd (cargo xtask setup installs nfdump)");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !String::from_utf8_lossy(&lab.xlat.output("ss", &["-Hnlu", "sport = :4739"]).stdout)
            .contains("4739")
        {
            assert!(
                std::time::Instant::now() < deadline,
                "nfcapd does not listen on {COLLECTOR}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, dir }
    }

    /// Stops it (it writes its file on SIGTERM) and reads every record back: the parsed
    /// records, and the raw text with nfcapd's own messages (for failure messages).
    pub fn records(mut self) -> (Vec<Record>, String) {
        // SAFETY: kill(2) on the collector this process spawned.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().expect("nfcapd");
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            use std::io::Read as _;
            let _ = e.read_to_string(&mut err);
        }
        assert!(status.success() || status.code().is_none(), "nfcapd: {err}");
        let out = std::process::Command::new("nfdump")
            .arg("-R")
            .arg(&self.dir)
            .args(["-q", "-N", "-o", "raw"])
            .output()
            .expect("nfdump");
        let raw = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "nfdump: {}{raw}\nnfcapd: {err}",
            String::from_utf8_lossy(&out.stderr)
        );
        // One "Flow Record:" block per record, "key = value" lines.
        let parsed = raw
            .split("Flow Record:")
            .skip(1)
            .map(|block| {
                block
                    .lines()
                    .filter_map(|l| l.split_once('='))
                    .map(|(k, v)| {
                        let v = v.split_whitespace().next().unwrap_or("");
                        // "16: Port block allocation" is 16; "2001:db8::" stays whole.
                        let v = v
                            .strip_suffix(':')
                            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
                            .unwrap_or(v);
                        (k.trim().to_string(), v.to_string())
                    })
                    .collect()
            })
            .collect();
        (parsed, format!("{raw}\nnfcapd: {err}"))
    }
}

//! Running the real dataplane under `BPF_PROG_TEST_RUN`: the loader and the counter
//! bookkeeping the packet-level tests share (each test file keeps its own case tables; the
//! packet model and frame builders are in `fixtures`).

use aya::programs::{TestRun, TestRunOptions};
use nat64_common::Counter;
use nat64_daemon::{
    Config, Dataplane, Stats,
    stats::{all_counters, series},
};

pub const XDP_ABORTED: u32 = 0;
pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;
pub const XDP_REDIRECT: u32 = 4;
pub const TC_ACT_OK: u32 = 0;
pub const TC_ACT_SHOT: u32 = 2;
pub const TC_ACT_REDIRECT: u32 = 7;
/// Size of `struct __sk_buff`, the TC program's context.
const SK_BUFF_LEN: usize = 192;

/// The embedded dataplane, loaded (verified by the kernel) with a configuration, not attached.
pub struct Loaded {
    pub dp: Dataplane,
    pub cfg: Config,
    /// Names the configuration in failure messages.
    pub label: String,
}

impl Loaded {
    /// Loads the program with the TOML configuration `toml`; panics with the reason if either
    /// is refused.
    pub fn load(label: &str, toml: &str) -> Self {
        crate::require_root();
        let cfg = Config::parse(toml, label)
            .unwrap_or_else(|e| panic!("{label}: configuration refused: {e}\n{toml}"));
        let dp = Dataplane::load(&cfg)
            .unwrap_or_else(|e| panic!("{label}: loading the dataplane failed: {e:?}"));
        Self {
            dp,
            cfg,
            label: label.to_string(),
        }
    }

    /// The same, with the ingress interface (loopback under `BPF_PROG_TEST_RUN`, ifindex 1)
    /// given `mtu`.
    pub fn with_mtu(label: &str, toml: &str, mtu: u32) -> Self {
        let mut x = Self::load(label, toml);
        let settings = nat64_daemon::InterfaceSettings {
            mtu,
            ..Default::default()
        };
        x.dp.set_interface(1, &settings)
            .unwrap_or_else(|e| panic!("{label}: set_interface(1, mtu {mtu}): {e:?}"));
        x
    }

    pub fn stats(&self) -> Stats {
        self.dp
            .stats()
            .unwrap_or_else(|e| panic!("{}: reading counters: {e:?}", self.label))
    }

    /// Runs the fast-path program once on `input`: (XDP action, output frame).
    pub fn run(&self, input: &[u8]) -> (u32, Vec<u8>) {
        self.run_program(nat64_daemon::dataplane::XDP_PROGRAM, input)
    }

    /// Runs the program `name` (one of `nat64_daemon::dataplane::*_PROGRAM`) once on `input`.
    pub fn run_program(&self, name: &'static str, input: &[u8]) -> (u32, Vec<u8>) {
        let prog = self
            .dp
            .program(name)
            .unwrap_or_else(|e| panic!("{}: no program {name}: {e:?}", self.label));
        let mut out = vec![0u8; input.len() + 256];
        let r = prog
            .test_run(TestRunOptions {
                data_in: Some(input),
                data_out: Some(&mut out),
                ..Default::default()
            })
            .unwrap_or_else(|e| panic!("{}: BPF_PROG_TEST_RUN failed: {e:?}", self.label));
        out.truncate(r.data_size_out as usize);
        (r.return_value, out)
    }

    /// Runs `nat64_tc` once on `input` as received on loopback (ifindex 1), as a GSO packet of
    /// `gso_size`-byte segments when that is not 0: (its verdict as the equivalent XDP
    /// action, output frame). TC_ACT_OK is XDP_PASS, TC_ACT_SHOT XDP_DROP, and a redirect out
    /// of the interface the packet came in on XDP_TX.
    pub fn run_tc(&self, input: &[u8], gso_size: u32) -> (u32, Vec<u8>) {
        self.try_run_tc(input, gso_size).unwrap_or_else(|e| {
            panic!(
                "{}: BPF_PROG_TEST_RUN (TC) of {} bytes failed: {e:?}\n{:02x?}",
                self.label,
                input.len(),
                &input[..input.len().min(64)]
            )
        })
    }

    /// [`Loaded::run_tc`], or the error of a frame the kernel's socket-buffer harness refuses
    /// before the program runs (it takes less than XDP's: some truncated IP headers).
    pub fn try_run_tc(
        &self,
        input: &[u8],
        gso_size: u32,
    ) -> Result<(u32, Vec<u8>), aya::programs::ProgramError> {
        let prog = self
            .dp
            .tc()
            .unwrap_or_else(|e| panic!("{}: no TC program: {e:?}", self.label));
        // struct __sk_buff: ingress_ifindex at 36, gso_segs at 164, gso_size at 176; the
        // kernel refuses any other field set but a few.
        let mut ctx = [0u8; SK_BUFF_LEN];
        ctx[36..40].copy_from_slice(&1u32.to_ne_bytes());
        if gso_size != 0 {
            let segs = (input.len() as u32).div_ceil(gso_size);
            ctx[164..168].copy_from_slice(&segs.to_ne_bytes());
            ctx[176..180].copy_from_slice(&gso_size.to_ne_bytes());
        }
        let mut out = vec![0u8; input.len() + 256];
        let r = prog.test_run(TestRunOptions {
            data_in: Some(input),
            data_out: Some(&mut out),
            ctx_in: Some(&ctx),
            ..Default::default()
        })?;
        out.truncate(r.data_size_out as usize);
        let action = match r.return_value {
            TC_ACT_OK => XDP_PASS,
            TC_ACT_SHOT => XDP_DROP,
            TC_ACT_REDIRECT => XDP_TX,
            n => 0x1000 + n,
        };
        Ok((action, out))
    }

    /// Runs once and also returns the counters that moved.
    pub fn run_counted(&self, input: &[u8]) -> (u32, Vec<u8>, Vec<(Counter, u64)>) {
        let before = self.stats();
        let (action, out) = self.run(input);
        (action, out, counter_delta(&before, &self.stats()))
    }
}

/// The counters that differ between two snapshots, and by how much.
pub fn counter_delta(before: &Stats, after: &Stats) -> Vec<(Counter, u64)> {
    all_counters()
        .filter_map(|c| {
            let d = after.get(c).wrapping_sub(before.get(c));
            (d != 0).then_some((c, d))
        })
        .collect()
}

/// `name{labels} +n, ...`, or "none".
pub fn render_moved(moved: &[(Counter, u64)]) -> String {
    if moved.is_empty() {
        return "none".into();
    }
    moved
        .iter()
        .map(|(c, d)| format!("{} +{d}", series(*c)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Records an error unless exactly the `want` counters moved, by exactly those amounts.
pub fn check_counters(moved: &[(Counter, u64)], want: &[(Counter, u64)], errors: &mut Vec<String>) {
    let mut ok = moved.len() == want.len();
    for (c, d) in want {
        ok &= moved.iter().any(|(m, md)| m == c && md == d);
    }
    if !ok {
        errors.push(format!(
            "counters: expected {}; moved {}",
            render_moved(want),
            render_moved(moved)
        ));
    }
}

/// The outcome of a case's checks: `Ok` when none recorded an error, else all of them, one a
/// line.
pub fn outcome(errors: Vec<String>) -> Result<(), String> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("\n"))
    }
}

pub fn action_name(a: u32) -> String {
    match a {
        XDP_ABORTED => "XDP_ABORTED".into(),
        XDP_DROP => "XDP_DROP".into(),
        XDP_PASS => "XDP_PASS".into(),
        XDP_TX => "XDP_TX".into(),
        XDP_REDIRECT => "XDP_REDIRECT".into(),
        n => format!("action {n}"),
    }
}

/// Runs `check` on every case of a table, printing one line per case, and returns the
/// failures, each naming its case: a table reports every case that fails, not only the first.
pub fn check_each<C>(
    label: &str,
    cases: &[C],
    name: impl Fn(&C) -> &str,
    check: impl Fn(&C) -> Result<(), String>,
) -> Vec<String> {
    let mut failures = Vec::new();
    for case in cases {
        let name = name(case);
        match check(case) {
            Ok(()) => println!("ok   [{label}] {name}"),
            Err(e) => {
                println!("FAIL [{label}] {name}");
                failures.push(format!("[{label}] {name}:\n{e}"));
            }
        }
    }
    failures
}

/// Panics listing every failed case, after all of them ran.
pub fn finish(total: usize, failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} of {total} cases failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

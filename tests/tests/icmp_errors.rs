//! Packet-level tests of ICMP error translation (RFC 7915 sections 4.2-4.3 and 5.2-5.3), run in
//! the kernel with `BPF_PROG_TEST_RUN`, in the style of `packet.rs` and with its packet model
//! (`nat64_tests::fixtures`).
//!
//! Every case describes an error once, family-neutrally (`Report`): the outer addresses in both
//! families, the packet in error (`Pkt`) and its addresses in both families, and how much of it
//! the error quotes. From that description the test builds, with etherparse and independently of
//! the dataplane,
//! - the input: the quoted packet built whole in the input family (transport checksum computed
//!   from scratch by etherparse), cut to the quoted length, then the ICMP header with its
//!   checksum computed from scratch over the message (ICMPv6: pseudo-header included), then the
//!   outer IP header;
//! - the expected output: the same quoted packet built whole in the *other* family (so its
//!   transport checksum is computed from scratch for the new addresses), cut to the length the
//!   translation gives, then the expected ICMP header (type, code, pointer or MTU from the RFC
//!   tables, written literally in each case) with its checksum computed from scratch, then the
//!   expected outer header.
//!
//! The only values taken from the output are the IPv4 Identifications the translator picks at
//! random when DF=0 (the outer header of a 6to4 error, and its quoted header when that is at
//! most 1260 bytes long). They are copied into an expected header that has DF=0, so the flag is
//! still checked, and every checksum covering them is computed from scratch.
//!
//! Each case then compares the output byte for byte (a mismatch names the header field of every
//! differing byte, quoted fields included), re-parses the output with etherparse and verifies
//! its checksums (outer IPv4 header, outer ICMP/ICMPv6, quoted IPv4 header, and the quoted
//! transport checksum when the whole packet is quoted), and checks the counters: a translated
//! error moves exactly `Packets(dir, Icmp)` by one and `Bytes(dir)` by the IP length of the
//! result; a drop moves exactly `Dropped(dir, reason)` by one.
//!
//! Addresses come from documentation ranges only: the IPv6 client 2001:db8:6::102 is
//! 198.51.100.2 through the EAM entry 2001:db8:6::100/120 <-> 198.51.100.0/24 (RFC 7757), the
//! IPv4 server 192.0.2.2 is 64:ff9b::c000:202 and the IPv4 router 203.0.113.1 is
//! 64:ff9b::cb00:7101 through the Well-Known Prefix (RFC 6052). The IPv6 router 2001:db8:ff::1
//! has no IPv4 mapping; its errors leave from the RFC 6791 address 192.0.2.1 when one is
//! configured. 2001:db8:6::101 (198.51.100.1) is an IPv6 router inside the EAM range, and
//! 2001:db8:6::1a0 (198.51.100.160) an IPv6 host that is down.
//!
//! Why one file of this size: every file in `tests/tests` is its own test binary, linked against
//! aya and the daemon; the suite is one table of ICMP error cases over one loaded program. The
//! packet model is `tests/src/fixtures.rs`.

use std::net::{Ipv4Addr, Ipv6Addr};

use nat64_common::{Counter, Dir, DropReason, Handoff, L4Proto};
use nat64_daemon::{dataplane::LINK_PROGRAM, stats::all_counters};
use nat64_tests::{
    fixtures::{
        CLIENT4, CLIENT6, Csum, EAM_CLIENT, Msg, Pkt, SERVER4, SERVER6, a4, a6, as_v4, as_v6,
        base_config, echo, icmp, icmp4_message, icmp6_message, msg, pattern, raw, syn, tcp_data,
        udp,
    },
    frames::{diff, folded_sum, verify_icmp_error_checksums},
    require_root,
    xdp::{
        Loaded, XDP_DROP, XDP_PASS, XDP_TX, action_name, check_counters, check_each, counter_delta,
        finish, outcome, render_moved,
    },
};

// ---------------------------------------------------------------------------------------------
// Addresses and configurations
// ---------------------------------------------------------------------------------------------

/// Another IPv6 host behind the EAM entry, unreachable in the "no route" cases.
const OTHER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 6, 0, 0, 0, 0, 0x1a0);
const OTHER4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 160);
/// An IPv6 router inside the EAM range: it has an IPv4 mapping of its own.
const ROUTER6_EAM: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 6, 0, 0, 0, 0, 0x101);
const ROUTER6_EAM4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
/// An IPv6 router without IPv4 mapping, and the RFC 6791 address its errors leave from.
const ROUTER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xff, 0, 0, 0, 0, 1);
const POOL6791: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// An IPv4 router, and how IPv6 hosts see it (64:ff9b::203.0.113.1).
const ROUTER4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
const ROUTER4_6: Ipv6Addr = Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0xcb00, 0x7101);

/// `base_config` with the RFC 6791 address 192.0.2.1.
fn config_6791() -> String {
    format!("pool6791 = \"192.0.2.1\"\n{}", base_config())
}

// ---------------------------------------------------------------------------------------------
// Packets in error (the packet model is in `nat64_tests::fixtures`)
// ---------------------------------------------------------------------------------------------

/// What this translator made of an IPv6 packet of the client on its way out (RFC 7915 section
/// 5.1), as an IPv4 router quotes it: DF=0 with some ID up to 1260 bytes, DF=1 and ID 0 above,
/// TTL 63 (one router further).
fn sent4(p: Pkt) -> Pkt {
    let df = 20 + p.options.len() + p.l4_len() > 1260;
    Pkt {
        df,
        id: if df { 0 } else { 0x9c1d },
        hop: 63,
        ..p
    }
}

// ---------------------------------------------------------------------------------------------
// ICMP headers
// ---------------------------------------------------------------------------------------------

/// ICMPv6 Parameter Problem: the pointer is the whole 32-bit word (RFC 4443 section 3.4).
const fn param6(code: u8, ptr: u32) -> Msg {
    Msg {
        ty: 4,
        code,
        rest: ptr.to_be_bytes(),
    }
}

/// ICMPv4 Parameter Problem: the pointer is the first byte of the word (RFC 792).
const fn param4(code: u8, ptr: u8) -> Msg {
    Msg {
        ty: 12,
        code,
        rest: [ptr, 0, 0, 0],
    }
}

/// ICMPv6 Packet Too Big (RFC 4443 section 3.2).
const fn too_big(mtu: u32) -> Msg {
    Msg {
        ty: 2,
        code: 0,
        rest: mtu.to_be_bytes(),
    }
}

/// ICMPv4 Fragmentation Needed (RFC 1191 section 4: the next-hop MTU is the low 16 bits).
const fn frag_needed(mtu: u16) -> Msg {
    let [hi, lo] = mtu.to_be_bytes();
    Msg {
        ty: 3,
        code: 4,
        rest: [0, 0, hi, lo],
    }
}

// ---------------------------------------------------------------------------------------------
// ICMP error reports, described once for both families
// ---------------------------------------------------------------------------------------------

/// How much of the packet in error the error carries.
#[derive(Clone, Copy, Debug)]
enum Cut {
    /// All of it.
    All,
    /// The IP header (options included) and this many bytes after it.
    L4(usize),
    /// This many bytes of the IP packet, header included (for the cut-short drop cases).
    Ip(usize),
}

#[derive(Clone, Debug)]
struct Report {
    /// Outer source and destination as the input carries them (in its family) and as the
    /// output must carry them.
    from6: Ipv6Addr,
    to6: Ipv6Addr,
    from4: Ipv4Addr,
    to4: Ipv4Addr,
    /// Outer traffic class or TOS, hop limit or TTL.
    tos: u8,
    hop: u8,
    /// IPv6 input only.
    flow: u32,
    /// IPv6 input only: extension headers before the ICMPv6 header, as (type of the first,
    /// bytes of all); the first byte of the last one must be 58.
    ext: Option<(u8, Vec<u8>)>,
    /// IPv4 input only.
    id: u16,
    df: bool,
    options: Vec<u8>,
    /// The packet in error, in the family of the input.
    quote: Pkt,
    /// Its addresses in IPv6 and in IPv4.
    q6: (Ipv6Addr, Ipv6Addr),
    q4: (Ipv4Addr, Ipv4Addr),
    cut: Cut,
    /// Bytes of the input's quoted packet overwritten after it is built (corrupt quotes).
    patch: Vec<(usize, u8)>,
    /// RFC 4884: zero bytes after the input's quote, then an extension (empty: none).
    ext_in: (usize, Vec<u8>),
    /// RFC 4884, the output: the translated quote cut or padded with zeros to this many bytes,
    /// and whether the extension follows (`None`: no extension is involved).
    ext_out: Option<(usize, bool)>,
}

/// 6to4: the IPv6 client itself reports on a packet the IPv4 server sent it (translated 4to6
/// earlier, so it came from 64:ff9b::c000:202). The packet arrived with hop limit 63.
fn client_reports(quote: Pkt) -> Report {
    Report {
        from6: CLIENT6,
        to6: SERVER6,
        from4: CLIENT4,
        to4: SERVER4,
        tos: 0,
        hop: 64,
        flow: 0,
        ext: None,
        id: 0,
        df: false,
        options: Vec::new(),
        quote: Pkt { hop: 63, ..quote },
        q6: (SERVER6, CLIENT6),
        q4: (SERVER4, CLIENT4),
        cut: Cut::All,
        patch: Vec::new(),
        ext_in: (0, Vec::new()),
        ext_out: None,
    }
}

/// 6to4: the IPv6 router 2001:db8:ff::1, which has no IPv4 address, reports on a packet from
/// the server to the client; the error leaves from the RFC 6791 address.
fn router6_reports(quote: Pkt) -> Report {
    Report {
        from6: ROUTER6,
        from4: POOL6791,
        ..client_reports(quote)
    }
}

/// The same report with the quoted packet's hop limit or TTL at 1: it expired at the reporter.
fn expired(mut r: Report) -> Report {
    r.quote.hop = 1;
    r
}

/// The same report about a packet to 2001:db8:6::1a0 instead of the client.
fn to_other(r: Report) -> Report {
    Report {
        q6: (r.q6.0, OTHER6),
        q4: (r.q4.0, OTHER4),
        ..r
    }
}

/// 4to6: the IPv4 router 203.0.113.1 reports on a packet the client sent to the server (as
/// this translator sent it on, see `sent4`). Linux routers send errors with DF=0 and some ID;
/// it arrives with TTL 62.
fn router4_reports(quote: Pkt) -> Report {
    Report {
        from6: ROUTER4_6,
        to6: CLIENT6,
        from4: ROUTER4,
        to4: CLIENT4,
        tos: 0,
        hop: 62,
        flow: 0,
        ext: None,
        id: 0x3a5c,
        df: false,
        options: Vec::new(),
        quote: sent4(quote),
        q6: (CLIENT6, SERVER6),
        q4: (CLIENT4, SERVER4),
        cut: Cut::All,
        patch: Vec::new(),
        ext_in: (0, Vec::new()),
        ext_out: None,
    }
}

/// 4to6: the IPv4 server itself reports on a packet the client sent it.
fn server_reports(quote: Pkt) -> Report {
    Report {
        from6: SERVER6,
        from4: SERVER4,
        ..router4_reports(quote)
    }
}

impl Report {
    fn cut(self, cut: Cut) -> Self {
        Self { cut, ..self }
    }

    /// The quoted part of the input's packet `ip`, whose header is `hdr` bytes long.
    fn cut_input(&self, mut ip: Vec<u8>, hdr: usize) -> Vec<u8> {
        let n = match self.cut {
            Cut::All => ip.len(),
            Cut::L4(n) => hdr + n,
            Cut::Ip(n) => n,
        };
        assert!(
            n <= ip.len(),
            "test setup: quoting {n} of {} bytes",
            ip.len()
        );
        ip.truncate(n);
        for &(i, b) in &self.patch {
            ip[i] = b;
        }
        let (pad, ext) = &self.ext_in;
        ip.resize(ip.len() + pad, 0);
        ip.extend_from_slice(ext);
        ip
    }

    /// With an RFC 4884 extension, the output's translated quote `q` cut or padded as the case
    /// says, and the extension after it; `None` without one.
    fn extended_output(&self, q: &[u8]) -> Option<Vec<u8>> {
        let (len, keep) = self.ext_out?;
        let mut q = q.to_vec();
        q.resize(len, 0);
        if keep {
            q.extend_from_slice(&self.ext_in.1);
        }
        Some(q)
    }

    /// The quoted part of the translated packet `ip`: the same transport bytes as in the input
    /// (`in_hdr` and `out_hdr` are the header lengths of input and output).
    fn cut_output(&self, mut ip: Vec<u8>, in_hdr: usize, out_hdr: usize) -> Vec<u8> {
        let n = match self.cut {
            Cut::All => ip.len(),
            Cut::L4(n) => out_hdr + n,
            Cut::Ip(n) => out_hdr + n.checked_sub(in_hdr).expect("test setup: cut in a header"),
        };
        ip.truncate(n);
        ip
    }

    /// The input frame: this report as an ICMPv6 error (6to4) or an ICMPv4 error (4to6).
    fn input(&self, dir: Dir, m: Msg) -> Vec<u8> {
        match dir {
            Dir::V6ToV4 => {
                let q = self.cut_input(self.quote.ip6(self.q6.0, self.q6.1), 40);
                let icmp = icmp6_message(m, self.from6, self.to6, &q);
                let (nh, l4) = match &self.ext {
                    None => (58, icmp),
                    Some((nh, ext)) => (*nh, [&ext[..], &icmp].concat()),
                };
                let outer = Pkt {
                    tos: self.tos,
                    hop: self.hop,
                    flow: self.flow,
                    ..raw(nh, l4)
                };
                outer.v6(self.from6, self.to6)
            }
            Dir::V4ToV6 => {
                let hdr = 20 + self.quote.options.len();
                let q = self.cut_input(self.quote.ip4(self.q4.0, self.q4.1), hdr);
                let outer = Pkt {
                    tos: self.tos,
                    hop: self.hop,
                    id: self.id,
                    df: self.df,
                    options: self.options.clone(),
                    ..raw(1, icmp4_message(m, &q))
                };
                outer.v4(self.from4, self.to4)
            }
        }
    }

    /// The ICMPv4 error RFC 7915 sections 5.2 and 5.3 make of `input(V6ToV4, _)`, with header
    /// `m`. `ids` are the outer and quoted IPv4 Identifications of the output, used where the
    /// expected header has DF=0.
    fn expected4(&self, m: Msg, copy_tos: bool, ids: (u16, u16)) -> Vec<u8> {
        let mut inner = as_v4(&self.quote, copy_tos);
        if !inner.df {
            inner.id = ids.1;
        }
        let mut q = self.cut_output(inner.ip4(self.q4.0, self.q4.1), 40, 20);
        // RFC 1812 section 4.3.2.3: an ICMPv4 error is at most 576 bytes, 28 of them headers.
        q.truncate(576 - 28);
        let q = self.extended_output(&q).unwrap_or(q);
        let mut outer = as_v4(
            &Pkt {
                tos: self.tos,
                hop: self.hop,
                ..raw(1, icmp4_message(m, &q))
            },
            copy_tos,
        );
        if !outer.df {
            outer.id = ids.0;
        }
        outer.v4(self.from4, self.to4)
    }

    /// The ICMPv6 error RFC 7915 sections 4.2 and 4.3 make of `input(V4ToV6, _)`, with header
    /// `m`.
    fn expected6(&self, m: Msg, copy_tos: bool) -> Vec<u8> {
        let inner = as_v6(&self.quote, copy_tos);
        // A quoted fragment becomes an IPv6 header and a Fragment header (`Pkt::ip6`).
        let frag = if inner.mf || inner.frag_off != 0 {
            8
        } else {
            0
        };
        let q = self.cut_output(
            inner.ip6(self.q6.0, self.q6.1),
            20 + self.quote.options.len(),
            40 + frag,
        );
        let q = self.extended_output(&q).unwrap_or(q);
        let outer = as_v6(
            &Pkt {
                tos: self.tos,
                hop: self.hop,
                ..raw(58, icmp6_message(m, self.from6, self.to6, &q))
            },
            copy_tos,
        );
        outer.v6(self.from6, self.to6)
    }
}

// ---------------------------------------------------------------------------------------------
// Cases and how they are checked
// ---------------------------------------------------------------------------------------------

enum Want {
    /// Translated into an error with this header.
    Msg(Msg),
    /// XDP_DROP, exactly this counter moved by one.
    Drop(DropReason),
}

struct Case {
    name: String,
    dir: Dir,
    report: Report,
    input: Msg,
    want: Want,
    /// The report the expected frame is built from, when it differs from the input's (an
    /// error cut down to the IPv6 minimum MTU comes out as one that quoted less).
    expect_as: Option<Report>,
}

/// An ICMPv6 error `input` in, the ICMPv4 error `out` out.
fn t64(name: &str, report: Report, input: Msg, out: Msg) -> Case {
    Case {
        name: name.into(),
        dir: Dir::V6ToV4,
        report,
        input,
        want: Want::Msg(out),
        expect_as: None,
    }
}

/// An ICMPv4 error `input` in, the ICMPv6 error `out` out.
fn t46(name: &str, report: Report, input: Msg, out: Msg) -> Case {
    Case {
        name: name.into(),
        dir: Dir::V4ToV6,
        report,
        input,
        want: Want::Msg(out),
        expect_as: None,
    }
}

fn d64(name: &str, report: Report, input: Msg, reason: DropReason) -> Case {
    Case {
        name: name.into(),
        dir: Dir::V6ToV4,
        report,
        input,
        want: Want::Drop(reason),
        expect_as: None,
    }
}

fn d46(name: &str, report: Report, input: Msg, reason: DropReason) -> Case {
    Case {
        name: name.into(),
        dir: Dir::V4ToV6,
        report,
        input,
        want: Want::Drop(reason),
        expect_as: None,
    }
}

/// Output offsets of the IPv4 Identifications of a translated 6to4 error: outer header, then
/// the quoted header after the 8-byte ICMP header.
const OUTER_ID: usize = 14 + 4;
const INNER_ID: usize = 14 + 20 + 8 + 4;

fn be16(b: &[u8], off: usize) -> u16 {
    b.get(off..off + 2)
        .map_or(0, |w| u16::from_be_bytes([w[0], w[1]]))
}

/// A loaded dataplane under test.
/// The loaded dataplane (see `nat64_tests::xdp::Loaded`), with this file's case checks.
struct Xlat(Loaded);

impl std::ops::Deref for Xlat {
    type Target = Loaded;
    fn deref(&self) -> &Loaded {
        &self.0
    }
}

impl std::ops::DerefMut for Xlat {
    fn deref_mut(&mut self) -> &mut Loaded {
        &mut self.0
    }
}

impl Xlat {
    fn load(label: &str, toml: &str) -> Self {
        Self(Loaded::load(label, toml))
    }

    fn with_mtu(label: &str, toml: &str, mtu: u32) -> Self {
        Self(Loaded::with_mtu(label, toml, mtu))
    }

    /// Runs one case; `Err` describes everything that differs.
    fn check(&self, case: &Case) -> Result<(), String> {
        let input = case.report.input(case.dir, case.input);
        let before = self.stats();
        let (action, out) = self.run(&input);
        let moved = counter_delta(&before, &self.stats());
        let mut errors = Vec::new();
        let want_action = if matches!(case.want, Want::Drop(_)) {
            XDP_DROP
        } else {
            XDP_PASS
        };
        if action != want_action {
            errors.push(format!(
                "action {} (expected {}); counters moved: {}",
                action_name(action),
                action_name(want_action),
                render_moved(&moved)
            ));
        }
        match &case.want {
            Want::Drop(reason) => check_counters(
                &moved,
                &[(Counter::Dropped(case.dir, *reason), 1)],
                &mut errors,
            ),
            Want::Msg(m) => {
                let report = case.expect_as.as_ref().unwrap_or(&case.report);
                let expected = match case.dir {
                    Dir::V6ToV4 => report.expected4(
                        *m,
                        self.cfg.copy_tos,
                        (be16(&out, OUTER_ID), be16(&out, INNER_ID)),
                    ),
                    Dir::V4ToV6 => report.expected6(*m, self.cfg.copy_tos),
                };
                if action == XDP_PASS {
                    if expected != out {
                        errors.push(format!(
                            "output differs from the expected frame\n{}",
                            diff(&expected, &out)
                        ));
                    }
                    if let Err(e) = verify_icmp_error_checksums(&out) {
                        errors.push(e);
                    }
                }
                let mut want = vec![
                    (Counter::Packets(case.dir, L4Proto::Icmp), 1),
                    (Counter::Bytes(case.dir), (expected.len() - 14) as u64),
                ];
                // From the router with no IPv4 mapping: the RFC 6791 source, counted.
                if case.dir == Dir::V6ToV4 && report.from6 == ROUTER6 {
                    want.push((Counter::Rfc6791(case.dir), 1));
                }
                check_counters(&moved, &want, &mut errors);
            }
        }
        outcome(errors)
    }

    /// Runs every case and returns the failures, each naming its case.
    fn check_all(&self, cases: &[Case]) -> Vec<String> {
        check_each(&self.label, cases, |c| &c.name, |c| self.check(c))
    }
}

fn run_table(label: &str, toml: &str, cases: &[Case]) {
    let x = Xlat::load(label, toml);
    finish(cases.len(), x.check_all(cases));
}

// ---------------------------------------------------------------------------------------------
// IPv6 to IPv4: types and codes (RFC 7915 section 5.2)
// ---------------------------------------------------------------------------------------------

/// A 1520-byte IPv6 TCP segment from the server (a 1500-byte IPv4 packet before this
/// translator), as quoted by the largest legal ICMPv6 error: 1192 bytes after the IPv6 header,
/// 1280 bytes in all.
fn big6() -> Pkt {
    tcp_data(443, 40000, 1448)
}

#[test]
fn errors_6to4_types_and_codes() {
    require_root();
    let port = || client_reports(udp(40001, 9999, 100));
    let route = || to_other(router6_reports(udp(40001, 9999, 100)));
    let tcp_syn = || client_reports(syn(40000, 22));
    let traceroute = || expired(router6_reports(udp(40001, 33434, 32)));
    let big = || router6_reports(big6()).cut(Cut::L4(1192));
    let ui = DropReason::IcmpUntranslatable;
    let mut cases = vec![
        // Destination Unreachable (type 1), every code.
        t64("DU code 0 (no route) -> 3/1", route(), msg(1, 0), msg(3, 1)),
        t64(
            "DU code 1 (administratively prohibited) -> 3/10",
            tcp_syn(),
            msg(1, 1),
            msg(3, 10),
        ),
        t64(
            "DU code 2 (beyond scope) -> 3/1",
            route(),
            msg(1, 2),
            msg(3, 1),
        ),
        t64(
            "DU code 3 (address unreachable) -> 3/1",
            route(),
            msg(1, 3),
            msg(3, 1),
        ),
        t64(
            "DU code 4 (port unreachable) -> 3/3",
            port(),
            msg(1, 4),
            msg(3, 3),
        ),
        d64(
            "DU code 5 (source address failed policy): dropped",
            route(),
            msg(1, 5),
            ui,
        ),
        d64("DU code 6 (reject route): dropped", route(), msg(1, 6), ui),
        d64(
            "DU code 7 (source routing header): dropped",
            route(),
            msg(1, 7),
            ui,
        ),
        d64(
            "DU code 8 (headers too long): dropped",
            route(),
            msg(1, 8),
            ui,
        ),
        // Time Exceeded (type 3), code kept.
        t64(
            "TE code 0 (hop limit) -> 11/0",
            traceroute(),
            msg(3, 0),
            msg(11, 0),
        ),
        t64(
            "TE code 1 (reassembly) -> 11/1",
            port(),
            msg(3, 1),
            msg(11, 1),
        ),
        // Parameter Problem (type 4): code 1 is protocol unreachable, code 0 keeps its pointer
        // through Figure 6.
        t64(
            "PP code 1 (unrecognised next header) -> 3/2 protocol unreachable",
            client_reports(raw(132, pattern(48, 9))),
            param6(1, 6),
            msg(3, 2),
        ),
        d64(
            "PP code 2 (unrecognised option): dropped",
            port(),
            param6(2, 40),
            ui,
        ),
        d64(
            "PP code 3 (incomplete header chain): dropped",
            port(),
            param6(3, 0),
            ui,
        ),
        // Packet Too Big (type 2): no ingress MTU known, so MTU - 20.
        t64(
            "PTB 1400 -> 3/4 MTU 1380",
            big(),
            too_big(1400),
            frag_needed(1380),
        ),
        t64(
            "PTB 1500 -> 3/4 MTU 1480",
            big(),
            too_big(1500),
            frag_needed(1480),
        ),
        t64(
            "PTB 1280 -> 3/4 MTU 1260",
            big(),
            too_big(1280),
            frag_needed(1260),
        ),
        // Error types without counterpart: RFC 4443 private experimentation and reserved.
        d64(
            "type 100 (private experimentation): dropped",
            port(),
            msg(100, 0),
            ui,
        ),
        d64(
            "type 127 (reserved error type): dropped",
            port(),
            msg(127, 0),
            ui,
        ),
    ];
    // Figure 6: IPv6 header offset -> IPv4 header offset.
    for (p6, p4) in [
        (0u32, 0u8),
        (1, 1),
        (4, 2),
        (5, 2),
        (6, 9),
        (7, 8),
        (8, 12),
        (23, 12),
        (24, 16),
        (39, 16),
    ] {
        cases.push(t64(
            &format!("PP code 0 pointer {p6} -> 12/0 pointer {p4}"),
            port(),
            param6(0, p6),
            param4(0, p4),
        ));
    }
    for p6 in [2u32, 3, 40, 0x0100_0007] {
        cases.push(d64(
            &format!("PP code 0 pointer {p6:#x}: no IPv4 field, dropped"),
            port(),
            param6(0, p6),
            ui,
        ));
    }
    run_table("6to4 types", &config_6791(), &cases);
}

// ---------------------------------------------------------------------------------------------
// IPv6 to IPv4: the quoted packet (RFC 7915 section 5.3), RFC 6791
// ---------------------------------------------------------------------------------------------

#[test]
fn errors_6to4_quoted_packets() {
    require_root();
    let port = msg(1, 4);
    let port4 = msg(3, 3);
    let prohibited = msg(1, 1);
    let prohibited4 = msg(3, 10);
    let te = msg(3, 0);
    let te4 = msg(11, 0);
    let cases = vec![
        // The scenario of the brief: the client's kernel has nothing on UDP port 9999.
        t64(
            "port unreachable quoting UDP (100 bytes), whole",
            client_reports(udp(40001, 9999, 100)),
            port,
            port4,
        ),
        t64(
            "port unreachable quoting UDP cut to its 8-byte header",
            client_reports(udp(40001, 9999, 100)).cut(Cut::L4(8)),
            port,
            port4,
        ),
        // RFC 8200 forbids it, but 4to6 might have let it through: zero stays zero.
        t64(
            "quoted UDP with zero checksum stays zero",
            client_reports(Pkt {
                csum: Csum::Zero,
                ..udp(40001, 9999, 60)
            }),
            port,
            port4,
        ),
        t64(
            "quoted TCP SYN, whole header with options",
            client_reports(syn(40000, 22)),
            prohibited,
            prohibited4,
        ),
        t64(
            "quoted TCP segment, header and 100 of 500 data bytes",
            client_reports(tcp_data(443, 40000, 500)).cut(Cut::L4(132)),
            prohibited,
            prohibited4,
        ),
        // The checksum (bytes 16-17) is not quoted, so there is nothing to update.
        t64(
            "quoted TCP cut to 8 bytes, before its checksum",
            client_reports(tcp_data(443, 40000, 500)).cut(Cut::L4(8)),
            prohibited,
            prohibited4,
        ),
        t64(
            "quoted echo request -> echo request (128 -> 8)",
            client_reports(echo(false, 56)),
            prohibited,
            prohibited4,
        ),
        t64(
            "quoted echo request cut to its 8-byte header",
            client_reports(echo(false, 56)).cut(Cut::L4(8)),
            prohibited,
            prohibited4,
        ),
        t64(
            "quoted echo reply -> echo reply (129 -> 0)",
            expired(router6_reports(echo(true, 56))),
            te,
            te4,
        ),
        t64(
            "quoted IPv6 header alone -> IPv4 header, total length from it",
            client_reports(udp(40001, 9999, 100)).cut(Cut::L4(0)),
            port,
            port4,
        ),
        t64(
            "quoted other protocol (GRE) copied",
            client_reports(raw(47, pattern(36, 1))),
            msg(4, 1),
            msg(3, 2),
        ),
        t64(
            "outer traffic class 0xc0 -> TOS 0xc0, quoted 0xb9 -> 0xb9, flow labels dropped",
            Report {
                tos: 0xc0,
                flow: 0x1_2345,
                quote: Pkt {
                    tos: 0xb9,
                    flow: 0x5_a5a5,
                    ..udp(40001, 9999, 20)
                },
                ..client_reports(udp(0, 0, 0))
            },
            port,
            port4,
        ),
        t64(
            "outer hop limit 2 -> TTL 2",
            Report {
                hop: 2,
                ..client_reports(udp(40001, 9999, 20))
            },
            port,
            port4,
        ),
        // 8 + 1232 = 1240 bytes of ICMPv4: DF=0, random ID, even though the quoted packet
        // (1500 bytes) gets DF=1 and ID 0.
        t64(
            "largest ICMPv6 error (1280 bytes) quoting a 1500-byte packet",
            router6_reports(big6()).cut(Cut::L4(1192)),
            te,
            te4,
        ),
        // The quoted total length comes from the quoted header, not from the quote.
        t64(
            "quoted packet of 1260 bytes as IPv4: DF=0, random ID",
            client_reports(udp(40001, 9999, 1232)).cut(Cut::L4(1192)),
            port,
            port4,
        ),
        t64(
            "quoted packet of 1261 bytes as IPv4: DF=1, ID 0",
            client_reports(udp(40001, 9999, 1233)).cut(Cut::L4(1192)),
            port,
            port4,
        ),
        // RFC 7915 section 5.1 skips extension headers (the fast path does so since d7e2be4);
        // the error is translated as if they were not there.
        t64(
            "outer destination options header (PadN) skipped",
            Report {
                ext: Some((60, vec![58, 0, 1, 4, 0, 0, 0, 0])),
                ..client_reports(udp(40001, 9999, 100))
            },
            port,
            port4,
        ),
        t64(
            "outer hop-by-hop and destination options headers skipped",
            Report {
                ext: Some((0, vec![60, 0, 1, 4, 0, 0, 0, 0, 58, 0, 1, 4, 0, 0, 0, 0])),
                ..expired(router6_reports(udp(40001, 33434, 32)))
            },
            te,
            te4,
        ),
        // RFC 6791.
        t64(
            "router without IPv4 mapping -> source 192.0.2.1 (pool6791)",
            expired(router6_reports(tcp_data(443, 40000, 100))),
            te,
            te4,
        ),
        t64(
            "router with an EAM mapping keeps it (198.51.100.1), pool6791 notwithstanding",
            Report {
                from6: ROUTER6_EAM,
                from4: ROUTER6_EAM4,
                ..expired(router6_reports(tcp_data(443, 40000, 100)))
            },
            te,
            te4,
        ),
        // The message is an echo request here, not an error: RFC 6791 does not apply.
        d64(
            "echo request from the unmapped router: no RFC 6791 for non-errors",
            router6_reports(udp(40001, 9999, 20)),
            msg(128, 0),
            DropReason::SourceUntranslatable,
        ),
    ];
    let x = Xlat::load("6to4 quoted", &config_6791());
    let mut failures = x.check_all(&cases);

    // One more case: the two DF=0 IDs are random, not constants. Sixteen runs of one error
    // give sixteen equal IDs with probability 2^-240 if they are random.
    let input = client_reports(udp(40001, 9999, 40)).input(Dir::V6ToV4, port);
    let (mut outer, mut inner) = (Vec::new(), Vec::new());
    for _ in 0..16 {
        let (action, out) = x.run(&input);
        if action != XDP_PASS {
            failures.push(format!("[6to4 quoted] random IDs: {}", action_name(action)));
            break;
        }
        outer.push(be16(&out, OUTER_ID));
        inner.push(be16(&out, INNER_ID));
    }
    for (what, mut ids) in [("outer", outer), ("quoted", inner)] {
        ids.sort_unstable();
        ids.dedup();
        if ids.len() < 2 {
            failures.push(format!(
                "[6to4 quoted] random IDs: 16 translations of one error all got {what} ID {ids:04x?}"
            ));
        }
    }
    finish(cases.len() + 1, failures);
}

// ---------------------------------------------------------------------------------------------
// IPv6 to IPv4: quoted packets that cannot be translated
// ---------------------------------------------------------------------------------------------

#[test]
fn errors_6to4_inner_untranslatable() {
    require_root();
    let iu = DropReason::InnerUntranslatable;
    let port = msg(1, 4);
    let u = || udp(40001, 9999, 100);
    // The header itself is 8 bytes announcing UDP next.
    let ext = |nh: u8| {
        let mut e = vec![17, 0, 0, 0, 0, 0, 0, 0];
        e.extend(pattern(16, nh));
        client_reports(raw(nh, e))
    };
    let cases = vec![
        d64(
            "quote of 39 bytes, short of an IPv6 header",
            client_reports(u()).cut(Cut::Ip(39)),
            port,
            iu,
        ),
        d64(
            "ICMPv6 header alone, nothing quoted",
            client_reports(u()).cut(Cut::Ip(0)),
            port,
            iu,
        ),
        d64(
            "quoted packet with version 4",
            Report {
                patch: vec![(0, 0x45)],
                ..client_reports(u())
            },
            port,
            iu,
        ),
        d64(
            "quoted source without mapping (2001:db8:99::1)",
            Report {
                q6: (a6("2001:db8:99::1"), CLIENT6),
                ..client_reports(u())
            },
            port,
            iu,
        ),
        d64(
            "quoted destination without mapping (2001:db8:1::1)",
            Report {
                q6: (SERVER6, a6("2001:db8:1::1")),
                ..client_reports(u())
            },
            port,
            iu,
        ),
        // Quoted hop-by-hop, routing, destination options and Fragment headers are translated
        // (tests/tests/extension_headers.rs); AH is not.
        d64("quoted authentication header", ext(51), port, iu),
        d64(
            "quoted ICMPv6 error (port unreachable inside time exceeded)",
            router6_reports(icmp(1, 4)),
            msg(3, 0),
            iu,
        ),
        d64(
            "quoted ICMPv6 packet too big",
            router6_reports(icmp(2, 0)),
            msg(1, 0),
            iu,
        ),
        // 65535 + 20 does not fit the quoted IPv4 total length.
        d64(
            "quoted payload length 65535 (IPv4 total length would overflow)",
            Report {
                patch: vec![(4, 0xff), (5, 0xff)],
                ..client_reports(u())
            },
            port,
            iu,
        ),
    ];
    run_table("6to4 inner", &config_6791(), &cases);
}

/// A namespace standing for the translator node on the IPv4 side: it forwards, and holds
/// 192.0.2.1 on `r0`, the interface its route toward the server (192.0.2.2) leaves by, so a FIB
/// lookup there gives 192.0.2.1 as the node's own source.
fn node_namespace(role: &str) -> nat64_tests::netns::Netns {
    let ns = nat64_tests::netns::Netns::new(role);
    ns.ip(&["link", "add", "r0", "type", "veth", "peer", "name", "r1"]);
    ns.ip(&["addr", "add", "192.0.2.1/24", "dev", "r0"]);
    ns.ip(&["link", "set", "r0", "up"]);
    ns.ip(&["link", "set", "r1", "up"]);
    ns.sysctl("net.ipv4.conf.all.forwarding", "1");
    ns
}

/// Without a pool6791 address, an error from an IPv6 router without IPv4 mapping leaves from
/// the node's own address toward its destination (RFC 6791 section 4 allows a pool of one;
/// Jool and TAYGA do the same), so that path MTU discovery works out of the box. The kernel
/// takes a packet arriving with its own source for a martian except on the translator link,
/// where the daemon lets it in: the fast path hands the error there untouched, and the link's
/// program asks the FIB for the address.
#[test]
fn errors_6to4_without_pool6791() {
    require_root();
    let x = Xlat::load("6to4 no pool6791", &base_config());
    let cases = [
        (
            "time exceeded",
            expired(router6_reports(udp(40001, 33434, 32))),
            msg(3, 0),
            msg(11, 0),
        ),
        (
            "packet too big",
            router6_reports(big6()).cut(Cut::L4(1192)),
            too_big(1400),
            frag_needed(1380),
        ),
    ];
    // The error goes to the server, 192.0.2.2: in this namespace the node holds 192.0.2.1 on
    // the interface that route leaves by.
    let ns = node_namespace("rfc6791");
    let mut errors = Vec::new();
    for (name, report, input, output) in cases {
        let frame = report.input(Dir::V6ToV4, input);
        // The fast path: handed off as it came.
        let before = x.stats();
        let (action, out) = x.run(&frame);
        let moved = counter_delta(&before, &x.stats());
        if action != XDP_PASS || out != frame {
            errors.push(format!(
                "{name}, fast path: {} (expected XDP_PASS, untouched)\n{}",
                action_name(action),
                diff(&frame, &out)
            ));
        }
        check_counters(
            &moved,
            &[(Counter::Handoff(Dir::V6ToV4, Handoff::OwnSource), 1)],
            &mut errors,
        );
        // The link: translated from 192.0.2.1, back into the link (MAC addresses swapped),
        // with the hop the kernel took on the way in given back.
        let before = x.stats();
        let (action, out) = ns.run(|| x.run_program(LINK_PROGRAM, &frame));
        let moved = counter_delta(&before, &x.stats());
        let expected = Report { hop: 65, ..report }.expected4(
            output,
            true,
            (be16(&out, OUTER_ID), be16(&out, INNER_ID)),
        );
        if action != XDP_TX || out.get(12..) != expected.get(12..) {
            errors.push(format!(
                "{name}, link: {} (expected XDP_TX)\n{}",
                action_name(action),
                diff(&expected[12..], out.get(12..).unwrap_or_default())
            ));
        }
        check_counters(
            &moved,
            &[
                (Counter::Packets(Dir::V6ToV4, L4Proto::Icmp), 1),
                (Counter::Bytes(Dir::V6ToV4), (expected.len() - 14) as u64),
                (Counter::Rfc6791(Dir::V6ToV4), 1),
            ],
            &mut errors,
        );
    }
    finish(2, errors);
}

/// RFC 7915 section 5.2: an ICMPv6 error's checksum is checked before translation; one with a
/// wrong checksum is dropped and counted, not translated into a corrupt ICMPv4 error. The
/// same for an ICMPv4 error (as Jool does), whose incremental update would otherwise carry
/// the wrong sum into an ICMPv6 error that looks translated.
#[test]
fn an_icmp_error_with_a_wrong_checksum_is_dropped() {
    require_root();
    let x = Xlat::load("bad checksum", &config_6791());
    let mut error6 = client_reports(udp(40001, 9999, 100)).input(Dir::V6ToV4, msg(1, 4));
    // The ICMPv6 checksum: after the Ethernet and IPv6 headers, at offset 2.
    error6[14 + 40 + 2] ^= 0x5a;
    let mut error4 = server_reports(udp(40001, 9999, 100)).input(Dir::V4ToV6, msg(3, 3));
    // A byte of the quote: the message no longer sums to its checksum.
    error4[14 + 20 + 8 + 30] ^= 0x5a;
    for (dir, input) in [(Dir::V6ToV4, error6), (Dir::V4ToV6, error4)] {
        let before = x.stats();
        let (action, _) = x.run(&input);
        assert_eq!(action, XDP_DROP, "{dir:?}: {}", action_name(action));
        assert_eq!(
            counter_delta(&before, &x.stats()),
            vec![(Counter::Dropped(dir, DropReason::BadChecksum), 1)],
            "{dir:?}"
        );
    }
}

/// An ICMPv4 error is translated whatever its source (Jool's graybox `ha`: a router may answer
/// from its loopback or from 0.0.0.0). Under the Well-Known Prefix, which must not carry
/// non-global addresses (RFC 6052 section 3.1), such a router, like one with a private
/// address, has no IPv6 address: the error takes the RFC 6791 source (`pool6791v6`).
#[test]
fn errors_from_martian_or_private_routers_take_the_rfc6791_source() {
    require_root();
    let pool6791v6: Ipv6Addr = "2001:db8:ff::6791".parse().unwrap();
    let x = Xlat::load(
        "martian routers",
        &format!("pool6791v6 = \"{pool6791v6}\"\n{}", base_config()),
    );
    let mut errors = Vec::new();
    for router in ["127.0.0.1", "0.0.0.0", "10.0.0.1", "192.168.1.1"] {
        let report = Report {
            from4: router.parse().unwrap(),
            from6: pool6791v6,
            ..router4_reports(udp(40001, 33434, 32))
        };
        let input = report.input(Dir::V4ToV6, msg(11, 0));
        let before = x.stats();
        let (action, out) = x.run(&input);
        let moved = counter_delta(&before, &x.stats());
        let expected = report.expected6(msg(3, 0), x.cfg.copy_tos);
        if action != XDP_PASS || out != expected {
            errors.push(format!(
                "from {router}: {}\n{}",
                action_name(action),
                diff(&expected, &out)
            ));
        }
        check_counters(
            &moved,
            &[
                (Counter::Packets(Dir::V4ToV6, L4Proto::Icmp), 1),
                (Counter::Bytes(Dir::V4ToV6), (expected.len() - 14) as u64),
                (Counter::Rfc6791(Dir::V4ToV6), 1),
            ],
            &mut errors,
        );
    }
    finish(4, errors);
}

/// At TC, what the kernel would drop before routing it into the translator link goes into the
/// link directly: an ICMPv4 error from a martian source (a router's 127.0.0.1), a packet with
/// a source route option (the kernel drops those unless `accept_source_route`). It leaves
/// addressed to the link's kernel side (both MAC addresses its own, as the kernel addresses
/// what it routes there) with the hop the kernel's forwarding would have taken, and the
/// link's program translates it.
#[test]
fn what_the_kernel_would_drop_goes_into_the_link_at_tc() {
    require_root();
    let ns = nat64_tests::netns::Netns::new("tc-into-link");
    ns.ip(&[
        "link", "add", "nat64", "type", "veth", "peer", "name", "nat64-dp",
    ]);
    ns.ip(&["link", "set", "nat64", "up"]);
    let mac = ns.mac("nat64");
    let martian = Report {
        from4: "127.0.0.1".parse().unwrap(),
        ..router4_reports(udp(40001, 33434, 32))
    };
    // A traversed loose source route (pointer past the length): the link translates it.
    let routed = Report {
        options: vec![131, 7, 8, 192, 0, 2, 9, 0],
        ..router4_reports(udp(40001, 33434, 32))
    };
    let mut errors = Vec::new();
    ns.run(|| {
        // Loaded here, where the link is: the daemon's settings name its kernel side.
        let x = Xlat::load("tc into the link", &base_config());
        for (name, report) in [("martian source", martian), ("source route", routed)] {
            let input = report.input(Dir::V4ToV6, msg(11, 0));
            let before = x.stats();
            let (action, out) = x.run_tc(&input, 0);
            let moved = counter_delta(&before, &x.stats());
            // The input, MAC addresses the link's, TTL one less (62 -> 61), checksum after.
            let mut want = input.clone();
            want[..6].copy_from_slice(&mac);
            want[6..12].copy_from_slice(&mac);
            want[14 + 8] = 61;
            let ihl = usize::from(want[14] & 0x0f) * 4;
            want[14 + 10..14 + 12].copy_from_slice(&[0, 0]);
            let c = !folded_sum(&want[14..14 + ihl]);
            want[14 + 10..14 + 12].copy_from_slice(&c.to_be_bytes());
            if action != XDP_TX || out != want {
                errors.push(format!(
                    "{name}: {} (expected a redirect)\n{}",
                    action_name(action),
                    diff(&want, &out)
                ));
            }
            check_counters(
                &moved,
                &[(Counter::Handoff(Dir::V4ToV6, Handoff::SlowPath), 1)],
                &mut errors,
            );
        }
    });
    finish(2, errors);
}

/// RFC 4884 extension bytes: an extension header (version 2) and an object, then a pattern.
fn extension(n: usize) -> Vec<u8> {
    let mut e = vec![0x20, 0, 0, 0, 0, 8, 1, 1, 192, 0, 2, 9];
    e.extend(pattern(n, 13));
    e.truncate(n);
    e
}

/// The same report with an RFC 4884 extension of `ext` bytes after `pad` zero bytes in the
/// input, and in the output the translated quote cut or padded to `out` bytes, the extension
/// after it when `kept`.
fn extended(r: Report, pad: usize, ext: usize, out: usize, kept: bool) -> Report {
    Report {
        ext_in: (pad, extension(ext)),
        ext_out: Some((out, kept)),
        ..r
    }
}

/// An error header with an RFC 4884 length attribute: ICMPv6 in 64-bit words in the first
/// byte of the second word (RFC 4884 section 4.2), ICMPv4 in 32-bit words in the second byte
/// (section 4.1).
const fn len6(ty: u8, code: u8, words: u8) -> Msg {
    Msg {
        ty,
        code,
        rest: [words, 0, 0, 0],
    }
}

const fn len4(ty: u8, code: u8, words: u8) -> Msg {
    Msg {
        ty,
        code,
        rest: [0, words, 0, 0],
    }
}

/// RFC 7915 sections 4.2 and 5.2 with RFC 4884: an extended error keeps its extension as an
/// opaque string after the translated quote, which is padded with zeros or cut to the other
/// family's unit (at least 128 bytes with its padding, RFC 4884 section 5.1), gives way to the
/// extension within 576 bytes of ICMPv4 (RFC 1812 section 4.3.2.3) or 1280 of ICMPv6 (RFC 4443
/// section 2.4(c)), and loses it when it does not fit beside 128 bytes of quote; the length
/// attribute counts the quote and its padding. The figures are those of Jool's graybox
/// README (`siit/7915`, groups ib, ic and id).
#[test]
fn rfc4884_extensions_both_ways() {
    require_root();
    let iu = DropReason::InnerUntranslatable;
    let q6 = |n| client_reports(udp(40001, 9999, n));
    let q4 = |n| router4_reports(udp(40001, 9999, n));
    let cases = vec![
        t64(
            "6to4: 122-byte quote and 6 bytes of padding (16 words), 20 of extension: \
             102 + 26 zero bytes (32 words)",
            extended(q6(74), 6, 20, 128, true),
            len6(1, 4, 16),
            len4(3, 3, 32),
        ),
        t64(
            "6to4: 420 bytes of extension beside 128 of quote: 576 bytes",
            extended(q6(80), 0, 420, 128, true),
            len6(1, 4, 16),
            len4(3, 3, 32),
        ),
        t64(
            "6to4: 421 bytes of extension do not fit: it goes, with the attribute",
            extended(q6(80), 0, 421, 108, false),
            len6(1, 4, 16),
            msg(3, 3),
        ),
        t64(
            "6to4: a 536-byte quote gives way to 40 bytes of extension (508 kept)",
            extended(q6(488), 0, 40, 508, true),
            len6(1, 4, 67),
            len4(3, 3, 127),
        ),
        t64(
            "6to4: a 48-byte quote (6 words, short of 128) is padded to 128",
            extended(q6(0), 0, 40, 128, true),
            len6(1, 4, 6),
            len4(3, 3, 32),
        ),
        t64(
            "6to4: Time Exceeded keeps its extension too",
            extended(expired(q6(80)), 0, 8, 128, true),
            len6(3, 0, 16),
            len4(11, 0, 32),
        ),
        d64(
            "6to4: an attribute past the end of the message",
            extended(q6(80), 0, 20, 0, false),
            len6(1, 4, 20),
            iu,
        ),
        d64(
            "6to4: an attribute short of the quoted IPv6 header",
            extended(q6(80), 0, 20, 0, false),
            len6(1, 4, 4),
            iu,
        ),
        t46(
            "4to6: 126-byte quote and 2 bytes of padding (32 words), 20 of extension: cut to \
             144 bytes (18 words)",
            extended(q4(98), 2, 20, 144, true),
            len4(3, 1, 32),
            len6(1, 0, 18),
        ),
        t46(
            "4to6: a 28-byte quote (7 words) is padded to 128",
            extended(q4(0), 0, 40, 128, true),
            len4(3, 3, 7),
            len6(1, 4, 16),
        ),
        t46(
            "4to6: Parameter Problem becomes a type without the attribute: the extension goes",
            extended(q4(100), 0, 20, 148, false),
            Msg {
                ty: 12,
                code: 0,
                rest: [8, 32, 0, 0],
            },
            param6(0, 7),
        ),
        t46(
            "4to6: a 1020-byte quote (255 words) and 200 bytes of extension: 1280 bytes",
            extended(q4(992), 0, 200, 1032, true),
            len4(3, 1, 255),
            len6(1, 0, 129),
        ),
        t46(
            "4to6: 1105 bytes of extension do not fit beside 128 of quote: it goes",
            extended(q4(100), 0, 1105, 148, false),
            len4(3, 1, 32),
            msg(1, 0),
        ),
        d46(
            "4to6: an attribute past the end of the message",
            extended(q4(100), 0, 20, 0, false),
            len4(3, 1, 40),
            iu,
        ),
    ];
    run_table("rfc4884", &base_config(), &cases);
}

/// At TC, an ICMPv4 error too long for the translator link loses there what its translation
/// would lose, and an RFC 4884 extension moves up behind the shorter quote with the length
/// attribute in IPv4's words: the link then makes the very ICMPv6 error that the whole error
/// makes in XDP.
#[test]
fn a_long_extended_icmpv4_error_keeps_its_extension_through_the_link_at_tc() {
    require_root();
    let x = Xlat::load("tc long extended error", &base_config());
    // 1020 bytes of quote (255 words) and 300 of extension: 1348 bytes of IPv4.
    let report = extended(router4_reports(udp(40001, 9999, 992)), 0, 300, 928, true);
    let input = report.input(Dir::V4ToV6, len4(3, 1, 255));
    assert_eq!(input.len(), 14 + 1348, "test setup");
    let (action, out) = x.run_tc(&input, 0);
    assert_eq!(action, XDP_PASS, "{}", action_name(action));
    // The quote as the link keeps it: 928 bytes of IPv6 are 908 of IPv4 (227 words).
    let shorter = Report {
        ext_out: None,
        ..extended(router4_reports(udp(40001, 9999, 992)), 0, 300, 0, true)
    }
    .cut(Cut::Ip(908));
    let mut want = shorter.input(Dir::V4ToV6, len4(3, 1, 227));
    // The header's ID and DF are the input's; only the lengths and checksums differ.
    want[14..14 + 20].copy_from_slice(&out[14..14 + 20]);
    assert!(out == want, "{}", diff(&want, &out));
    let ip = &out[14..];
    assert_eq!(be16(ip, 2), 1236, "IPv4 total length");
    assert_eq!(folded_sum(&ip[..20]), 0xffff, "IPv4 header checksum");
    assert_eq!(folded_sum(&ip[20..]), 0xffff, "ICMP checksum");
    // The link's translation of it is the XDP translation of the whole error.
    let (_, whole) = x.run(&input);
    let (action, linked) = x.run(&out);
    assert_eq!(action, XDP_PASS, "{}", action_name(action));
    let expected = report.expected6(len6(1, 0, 116), false);
    assert!(linked == expected, "{}", diff(&expected, &linked));
    assert!(whole == expected, "{}", diff(&expected, &whole));
}

/// At TC, an ICMPv4 error is left to the translator link, whose IPv4 routes let in at most
/// ipv6_mtu - 28 bytes (1252 at the least) and where the kernel drops a longer error rather
/// than fragment it: so it is cut on its way to the 1240 bytes that its translation keeps
/// (1280 bytes of IPv6, RFC 4443 section 2.4(c)), checksums kept right.
#[test]
fn a_long_icmpv4_error_is_cut_to_fit_the_link_at_tc() {
    require_root();
    let x = Xlat::load("tc long error", &base_config());
    let input = router4_reports(big6()).input(Dir::V4ToV6, msg(3, 1));
    assert!(input.len() > 14 + 1252, "test setup: {} bytes", input.len());
    let before = x.stats();
    let (action, out) = x.run_tc(&input, 0);
    assert_eq!(action, XDP_PASS, "{}", action_name(action));
    assert_eq!(out.len(), 14 + 1240);
    // The same bytes but for the total length and the two checksums.
    let mut want = input[..14 + 1240].to_vec();
    want[16..18].copy_from_slice(&1240u16.to_be_bytes());
    for at in [24, 25, 36, 37] {
        want[at] = out[at];
    }
    assert!(out == want, "{}", diff(&want, &out));
    // Both checksums verify (the quoted packet is incomplete, so only the outer ones).
    let ip = &out[14..];
    assert_eq!(folded_sum(&ip[..20]), 0xffff, "IPv4 header checksum");
    assert_eq!(folded_sum(&ip[20..]), 0xffff, "ICMP checksum");
    assert_eq!(
        counter_delta(&before, &x.stats()),
        vec![(Counter::Handoff(Dir::V4ToV6, Handoff::SlowPath), 1)]
    );
}

/// An ICMPv6 error from one of this node's own addresses (its kernel's Packet Too Big for a
/// translated packet that outgrew the IPv6 route) is the node's own: on the translator link it
/// leaves from the node's IPv4 address toward its destination, as the kernel's own ICMPv4
/// errors do, not from pool6791.
#[test]
fn errors_of_this_node_leave_from_its_ipv4_address() {
    require_root();
    // The node holds 2001:db8:ff::1 (ROUTER6) and 192.0.2.1 toward the server.
    let ns = node_namespace("own-errors");
    ns.ip(&[
        "-6",
        "addr",
        "add",
        "2001:db8:ff::1/64",
        "dev",
        "r0",
        "nodad",
    ]);
    // Loaded in the namespace: the daemon records the node's addresses where it runs.
    let cfg = format!("pool6791 = \"203.0.113.9\"\n{}", base_config());
    let x = ns.run(|| Xlat::load("own errors", &cfg));
    let report = router6_reports(big6()).cut(Cut::L4(1192));
    let frame = report.input(Dir::V6ToV4, too_big(1400));
    let (action, out) = ns.run(|| x.run_program(LINK_PROGRAM, &frame));
    let expected = Report {
        hop: 65,
        from4: a4("192.0.2.1"),
        ..report
    }
    .expected4(
        frag_needed(1380),
        true,
        (be16(&out, OUTER_ID), be16(&out, INNER_ID)),
    );
    assert_eq!(action, XDP_TX, "{}", action_name(action));
    assert!(
        out.get(12..) == expected.get(12..),
        "{}",
        diff(&expected[12..], out.get(12..).unwrap_or_default())
    );
    // The same error from a router the node is not: from pool6791.
    let other = Report {
        from6: a6("2001:db8:fe::1"),
        ..router6_reports(big6()).cut(Cut::L4(1192))
    };
    let (action, out) =
        ns.run(|| x.run_program(LINK_PROGRAM, &other.input(Dir::V6ToV4, too_big(1400))));
    assert_eq!(action, XDP_TX, "{}", action_name(action));
    assert_eq!(
        &out[26..30],
        &[203, 0, 113, 9],
        "source of the translated error"
    );
}

// ---------------------------------------------------------------------------------------------
// IPv4 to IPv6: types and codes (RFC 7915 section 4.2)
// ---------------------------------------------------------------------------------------------

/// An IPv4 TCP packet of the client of `total` bytes (32-byte TCP header with timestamps).
fn tcp4_total(total: usize) -> Pkt {
    tcp_data(40000, 443, total - 52)
}

#[test]
fn errors_4to6_types_and_codes() {
    require_root();
    let route = || router4_reports(udp(40001, 53, 40));
    let port = || server_reports(udp(40001, 9999, 100));
    let traceroute = || expired(router4_reports(udp(40001, 33434, 32)));
    // A Linux router quotes up to 576 bytes of ICMP (RFC 1812 section 4.3.2.3).
    let big = |total: usize| router4_reports(tcp4_total(total)).cut(Cut::L4(528));
    let ui = DropReason::IcmpUntranslatable;
    let no_route = msg(1, 0);
    let prohibited = msg(1, 1);
    let mut cases = vec![
        t46(
            "DU code 2 (protocol unreachable) -> PP code 1 pointer 6",
            server_reports(raw(132, pattern(48, 9))),
            msg(3, 2),
            param6(1, 6),
        ),
        t46(
            "DU code 3 (port unreachable) -> 1/4",
            port(),
            msg(3, 3),
            msg(1, 4),
        ),
        d46(
            "DU code 14 (host precedence violation): dropped",
            route(),
            msg(3, 14),
            ui,
        ),
        d46("DU code 16 (undefined): dropped", route(), msg(3, 16), ui),
        t46(
            "TE code 0 (TTL exceeded) -> 3/0",
            traceroute(),
            msg(11, 0),
            msg(3, 0),
        ),
        t46(
            "TE code 1 (reassembly) -> 3/1",
            port(),
            msg(11, 1),
            msg(3, 1),
        ),
        // Parameter Problem code 2 (bad length) is translated like code 0, code 1 (missing
        // option) and anything else dropped.
        t46(
            "PP code 2 (bad length) pointer 2 -> 4/0 pointer 4",
            port(),
            param4(2, 2),
            param6(0, 4),
        ),
        d46("PP code 2 pointer 10: dropped", port(), param4(2, 10), ui),
        d46(
            "PP code 1 (missing option): dropped",
            port(),
            param4(1, 0),
            ui,
        ),
        d46("PP code 3 (undefined): dropped", port(), param4(3, 0), ui),
        // Types RFC 7915 section 4.2 drops.
        d46("source quench (4): dropped", route(), msg(4, 0), ui),
        d46("redirect (5): dropped", route(), msg(5, 1), ui),
        d46("type 40 (Photuris): dropped", route(), msg(40, 0), ui),
        // Fragmentation Needed -> Packet Too Big, no ingress MTU known: max(1280, MTU + 20).
        t46(
            "FN MTU 1400 -> PTB 1420",
            big(1500),
            frag_needed(1400),
            too_big(1420),
        ),
        t46(
            "FN MTU 1480 -> PTB 1500",
            big(1500),
            frag_needed(1480),
            too_big(1500),
        ),
        t46(
            "FN MTU 1260 -> PTB 1280",
            big(1500),
            frag_needed(1260),
            too_big(1280),
        ),
        t46(
            "FN MTU 576 -> PTB 1280 (never below the IPv6 minimum)",
            big(1500),
            frag_needed(576),
            too_big(1280),
        ),
        // A router that reports MTU 0 (pre-RFC 1191): the greatest plateau below the quoted
        // total length, plus 20.
        t46(
            "FN MTU 0, quoted 1500 -> plateau 1492 -> PTB 1512",
            big(1500),
            frag_needed(0),
            too_big(1512),
        ),
        t46(
            "FN MTU 0, quoted 1493 -> plateau 1492 -> PTB 1512",
            big(1493),
            frag_needed(0),
            too_big(1512),
        ),
        t46(
            "FN MTU 0, quoted 1492 -> plateau 1006 -> PTB 1280",
            big(1492),
            frag_needed(0),
            too_big(1280),
        ),
        t46(
            "FN MTU 0, quoted 4000 -> plateau 2002 -> PTB 2022",
            big(4000),
            frag_needed(0),
            too_big(2022),
        ),
        t46(
            "FN MTU 0, quoted 9000 -> plateau 8166 -> PTB 8186",
            big(9000),
            frag_needed(0),
            too_big(8186),
        ),
    ];
    for code in [0u8, 1, 5, 6, 7, 8, 11, 12] {
        cases.push(t46(
            &format!("DU code {code} -> 1/0 (no route)"),
            route(),
            msg(3, code),
            no_route,
        ));
    }
    for code in [9u8, 10, 13, 15] {
        cases.push(t46(
            &format!("DU code {code} -> 1/1 (administratively prohibited)"),
            route(),
            msg(3, code),
            prohibited,
        ));
    }
    // Figure 3: IPv4 header offset -> IPv6 header offset.
    for (p4, p6) in [
        (0u8, 0u32),
        (1, 1),
        (2, 4),
        (3, 4),
        (8, 7),
        (9, 6),
        (12, 8),
        (15, 8),
        (16, 24),
        (19, 24),
    ] {
        cases.push(t46(
            &format!("PP code 0 pointer {p4} -> 4/0 pointer {p6}"),
            port(),
            param4(0, p4),
            param6(0, p6),
        ));
    }
    for p4 in [4u8, 5, 6, 7, 10, 11, 20, 255] {
        cases.push(d46(
            &format!("PP code 0 pointer {p4}: no IPv6 field, dropped"),
            port(),
            param4(0, p4),
            ui,
        ));
    }
    run_table("4to6 types", &base_config(), &cases);
}

// ---------------------------------------------------------------------------------------------
// IPv4 to IPv6: the quoted packet (RFC 7915 section 4.3) and the size limit
// ---------------------------------------------------------------------------------------------

#[test]
fn errors_4to6_quoted_packets() {
    require_root();
    let te = msg(11, 0);
    let te6 = msg(3, 0);
    let port = msg(3, 3);
    let port6 = msg(1, 4);
    let net = msg(3, 0);
    let net6 = msg(1, 0);
    let at_router = |p: Pkt| expired(router4_reports(p));
    let rr = vec![1, 7, 7, 4, 0, 0, 0, 0]; // NOP, record route with one empty slot
    let mut max_rr = vec![7, 39, 4];
    max_rr.extend([0; 36]);
    max_rr.push(0); // end of options list: 40 bytes, IHL 15
    let router_alert = vec![148, 4, 0, 0];
    // The server reports on a first fragment, as the client's IPv6 fragments became IPv4
    // ones (RFC 7915 section 5.1.1: DF clear, the Identification's low 16 bits).
    let on_first_fragment = |p: Pkt| {
        let mut r = server_reports(p);
        r.quote.mf = true;
        r.quote.df = false;
        r.quote.id = 0x7e55;
        r
    };
    let cases = vec![
        // RFC 7915 section 4.3: the quoted header is translated as section 4.1 translates a
        // packet, so a quoted first fragment gets a Fragment Header (M set, the ID
        // zero-extended), and the quote grows by 28 bytes, not 20.
        t46(
            "port unreachable quoting a first fragment of UDP: a Fragment Header in the quote",
            on_first_fragment(udp(40001, 9999, 100)),
            port,
            port6,
        ),
        t46(
            "reassembly time exceeded quoting a first fragment of TCP, cut to 8 bytes",
            on_first_fragment(tcp_data(40000, 443, 100)).cut(Cut::L4(8)),
            msg(11, 1),
            msg(3, 1),
        ),
        // A 1500-byte first fragment quoted whole: 1280 bytes, 48 of them the quoted headers.
        Case {
            expect_as: Some(on_first_fragment(udp(40001, 9999, 1472)).cut(Cut::L4(1184))),
            ..t46(
                "a whole 1500-byte first fragment quoted: cut to 1280",
                on_first_fragment(udp(40001, 9999, 1472)),
                port,
                port6,
            )
        },
        // The scenario of the brief: traceroute from the client through an IPv4 router.
        t46(
            "time exceeded quoting UDP (32 bytes), whole",
            at_router(udp(40001, 33434, 32)),
            te,
            te6,
        ),
        t46(
            "port unreachable from the server quoting UDP (100 bytes), whole",
            server_reports(udp(40001, 9999, 100)),
            port,
            port6,
        ),
        t46(
            "quoted UDP cut to 8 bytes (RFC 792 minimum)",
            server_reports(udp(40001, 9999, 100)).cut(Cut::L4(8)),
            port,
            port6,
        ),
        // Section 4.3 does not ask for a checksum in a quoted packet; the zero the client's
        // packet went out with (see 6to4) comes back.
        t46(
            "quoted UDP with zero checksum stays zero",
            server_reports(Pkt {
                csum: Csum::Zero,
                ..udp(40001, 9999, 60)
            }),
            port,
            port6,
        ),
        t46(
            "quoted TCP SYN, whole header with options",
            router4_reports(syn(40000, 443)),
            net,
            net6,
        ),
        t46(
            "quoted TCP cut to 8 bytes (RFC 792 minimum), before its checksum",
            router4_reports(tcp_data(40000, 443, 500)).cut(Cut::L4(8)),
            net,
            net6,
        ),
        t46(
            "quoted TCP segment, 576-byte error of a Linux router",
            router4_reports(tcp_data(40000, 443, 900)).cut(Cut::L4(528)),
            net,
            net6,
        ),
        t46(
            "quoted echo request -> echo request (8 -> 128)",
            at_router(echo(false, 56)),
            te,
            te6,
        ),
        t46(
            "quoted echo request cut to 8 bytes",
            at_router(echo(false, 56)).cut(Cut::L4(8)),
            te,
            te6,
        ),
        t46(
            "quoted echo reply -> echo reply (0 -> 129)",
            at_router(echo(true, 56)),
            te,
            te6,
        ),
        t46(
            "quoted IPv4 header alone",
            server_reports(udp(40001, 9999, 100)).cut(Cut::L4(0)),
            port,
            port6,
        ),
        t46(
            "quoted other protocol (GRE) copied",
            router4_reports(raw(47, pattern(36, 2))),
            net,
            net6,
        ),
        t46(
            "quoted IPv4 options (NOP, record route) removed",
            server_reports(Pkt {
                options: rr.clone(),
                ..udp(40001, 9999, 100)
            }),
            port,
            port6,
        ),
        t46(
            "quoted IPv4 options removed, quote cut to 8 bytes after them",
            server_reports(Pkt {
                options: rr.clone(),
                ..tcp_data(40000, 443, 100)
            })
            .cut(Cut::L4(8)),
            port,
            port6,
        ),
        t46(
            "outer IPv4 options (router alert) removed",
            Report {
                options: router_alert.clone(),
                ..at_router(udp(40001, 33434, 32))
            },
            te,
            te6,
        ),
        t46(
            "outer and quoted options (40 bytes, IHL 15) removed",
            Report {
                options: router_alert.clone(),
                ..router4_reports(Pkt {
                    options: max_rr.clone(),
                    ..echo(false, 24)
                })
            },
            net,
            net6,
        ),
        t46(
            "outer TOS 0xc0 -> traffic class 0xc0, quoted TOS 0xb9 -> 0xb9",
            Report {
                tos: 0xc0,
                ..router4_reports(Pkt {
                    tos: 0xb9,
                    ..udp(40001, 53, 40)
                })
            },
            net,
            net6,
        ),
        t46(
            "outer TTL 2 -> hop limit 2, outer DF=1 and ID gone",
            Report {
                hop: 2,
                df: true,
                id: 0,
                ..server_reports(udp(40001, 9999, 20))
            },
            port,
            port6,
        ),
        // 40 + 8 + 40 + 1192 = 1280 bytes of IPv6: the limit of RFC 4443 section 2.4(c).
        t46(
            "1280 bytes exactly: translated",
            at_router(udp(40001, 33434, 1272)).cut(Cut::L4(1192)),
            te,
            te6,
        ),
        t46(
            "1280 bytes exactly, quoted with 4 option bytes that go away",
            Report {
                quote: Pkt {
                    options: router_alert.clone(),
                    ..at_router(udp(40001, 33434, 1272)).quote
                },
                ..at_router(udp(0, 0, 0))
            }
            .cut(Cut::L4(1192)),
            te,
            te6,
        ),
        t46(
            "1280 bytes exactly, outer options do not count",
            Report {
                options: router_alert.clone(),
                ..at_router(udp(40001, 33434, 1272))
            }
            .cut(Cut::L4(1192)),
            te,
            te6,
        ),
        // RFC 4443 section 2.4(c): longer is cut down to 1280 bytes, the end of the quote going;
        // the result is the error that quoted 1192 bytes.
        Case {
            expect_as: Some(at_router(udp(40001, 33434, 1272)).cut(Cut::L4(1192))),
            ..t46(
                "1281 bytes: cut to 1280",
                at_router(udp(40001, 33434, 1272)).cut(Cut::L4(1193)),
                te,
                te6,
            )
        },
        Case {
            expect_as: Some(
                Report {
                    quote: Pkt {
                        options: router_alert.clone(),
                        ..at_router(udp(40001, 33434, 1272)).quote
                    },
                    ..at_router(udp(0, 0, 0))
                }
                .cut(Cut::L4(1192)),
            ),
            ..t46(
                "1281 bytes with quoted options: cut to 1280",
                Report {
                    quote: Pkt {
                        options: router_alert.clone(),
                        ..at_router(udp(40001, 33434, 1272)).quote
                    },
                    ..at_router(udp(0, 0, 0))
                }
                .cut(Cut::L4(1193)),
                te,
                te6,
            )
        },
        // A whole 1500-byte packet quoted (RFC 4884-style routers): 1240 bytes of it kept.
        Case {
            expect_as: Some(at_router(udp(40001, 33434, 1472)).cut(Cut::L4(1192))),
            ..t46(
                "a whole 1500-byte packet quoted: cut to 1280",
                at_router(udp(40001, 33434, 1472)),
                te,
                te6,
            )
        },
    ];
    run_table("4to6 quoted", &base_config(), &cases);
}

// ---------------------------------------------------------------------------------------------
// IPv4 to IPv6: quoted packets that cannot be translated
// ---------------------------------------------------------------------------------------------

#[test]
fn errors_4to6_inner_untranslatable() {
    require_root();
    let iu = DropReason::InnerUntranslatable;
    let port = msg(3, 3);
    let u = || udp(40001, 9999, 100);
    let cases = vec![
        d46(
            "quote of 16 bytes, short of an IPv4 header",
            server_reports(u()).cut(Cut::Ip(16)),
            port,
            iu,
        ),
        d46(
            "quote of 20 bytes of a 24-byte header (IHL 6)",
            server_reports(Pkt {
                options: vec![148, 4, 0, 0],
                ..u()
            })
            .cut(Cut::Ip(20)),
            port,
            iu,
        ),
        d46(
            "quoted IHL 4",
            Report {
                patch: vec![(0, 0x44)],
                ..server_reports(u())
            },
            port,
            iu,
        ),
        d46(
            "quoted packet with version 6",
            Report {
                patch: vec![(0, 0x65)],
                ..server_reports(u())
            },
            port,
            iu,
        ),
        // A fragmented ICMP message is not translated, in a quote either (`v4_to_v6`).
        d46(
            "quoted first fragment (MF) of an echo request",
            server_reports(Pkt {
                mf: true,
                ..echo(false, 100)
            }),
            port,
            iu,
        ),
        d46(
            "quoted later fragment (offset 185)",
            server_reports(Pkt {
                frag_off: 185,
                ..u()
            }),
            msg(11, 1),
            iu,
        ),
        d46(
            "quoted ICMP error (port unreachable inside time exceeded)",
            router4_reports(icmp(3, 3)),
            msg(11, 0),
            iu,
        ),
        d46(
            "quoted total length 10, below its own header",
            Report {
                patch: vec![(2, 0), (3, 10)],
                ..server_reports(u())
            },
            port,
            iu,
        ),
    ];
    let mut failures = Xlat::load("4to6 inner", &base_config()).check_all(&cases);
    let mut total = cases.len();

    // With pool6 every IPv4 address maps; without it only EAM entries do. The server gets one
    // (2001:db8:4::200/120 <-> 192.0.2.0/24), 203.0.113.9 none.
    let cfg = format!(
        "pool6 = \"off\"\n{EAM_CLIENT}\n[[eam]]\nipv6 = \"2001:db8:4::200/120\"\nipv4 = \"192.0.2.0/24\"\n"
    );
    let eam = |q4: (Ipv4Addr, Ipv4Addr), q6: (Ipv6Addr, Ipv6Addr)| Report {
        from6: a6("2001:db8:4::202"),
        q4,
        q6,
        ..server_reports(u())
    };
    let far = a4("203.0.113.9");
    let unused6 = a6("2001:db8:ffff::1"); // never built: the case is a drop
    let cases = vec![
        t46(
            "EAM only: quoted addresses both mapped",
            eam((CLIENT4, SERVER4), (CLIENT6, a6("2001:db8:4::202"))),
            port,
            msg(1, 4),
        ),
        d46(
            "EAM only: quoted destination without mapping (203.0.113.9)",
            eam((CLIENT4, far), (CLIENT6, unused6)),
            port,
            iu,
        ),
        d46(
            "EAM only: quoted source without mapping (203.0.113.9)",
            eam((far, SERVER4), (unused6, a6("2001:db8:4::202"))),
            port,
            iu,
        ),
    ];
    total += cases.len();
    failures.extend(Xlat::load("4to6 inner eam-only", &cfg).check_all(&cases));
    finish(total, failures);
}

// ---------------------------------------------------------------------------------------------
// Packet Too Big / Fragmentation Needed with a known ingress MTU
// ---------------------------------------------------------------------------------------------

/// RFC 7915 section 5.2: min(MTU - 20, ingress MTU - 20); section 4.2: max(1280, min(MTU + 20,
/// ingress MTU + 20)). Both directions enter through loopback here, with MTU 1400.
#[test]
fn packet_too_big_with_ingress_mtu() {
    require_root();
    let big6 = || router6_reports(big6()).cut(Cut::L4(1192));
    let big4 = |total: usize| router4_reports(tcp4_total(total)).cut(Cut::L4(528));
    let cases = vec![
        t64(
            "6to4 PTB 1500, ingress 1400 -> FN 1380",
            big6(),
            too_big(1500),
            frag_needed(1380),
        ),
        t64(
            "6to4 PTB 1300, ingress 1400 -> FN 1280",
            big6(),
            too_big(1300),
            frag_needed(1280),
        ),
        t64(
            "6to4 PTB 1280, ingress 1400 -> FN 1260",
            big6(),
            too_big(1280),
            frag_needed(1260),
        ),
        t46(
            "4to6 FN 1500, ingress 1400 -> PTB 1420",
            big4(1500),
            frag_needed(1500),
            too_big(1420),
        ),
        t46(
            "4to6 FN 1300, ingress 1400 -> PTB 1320",
            big4(1500),
            frag_needed(1300),
            too_big(1320),
        ),
        t46(
            "4to6 FN 0, quoted 4000, ingress 1400 -> PTB 1420",
            big4(4000),
            frag_needed(0),
            too_big(1420),
        ),
        t46(
            "4to6 FN 1000, ingress 1400 -> PTB 1280",
            big4(1500),
            frag_needed(1000),
            too_big(1280),
        ),
    ];
    let x = Xlat::with_mtu("ingress mtu 1400", &config_6791(), 1400);
    finish(cases.len(), x.check_all(&cases));
}

// ---------------------------------------------------------------------------------------------
// copy_tos = false
// ---------------------------------------------------------------------------------------------

#[test]
fn copy_tos_off_in_errors() {
    require_root();
    let cfg = format!("copy_tos = false\n{}", config_6791());
    let cases = vec![
        t64(
            "6to4: traffic classes 0xc0 and 0xb9 -> TOS 0 outside and inside",
            Report {
                tos: 0xc0,
                quote: Pkt {
                    tos: 0xb9,
                    ..udp(40001, 9999, 20)
                },
                ..client_reports(udp(0, 0, 0))
            },
            msg(1, 4),
            msg(3, 3),
        ),
        t46(
            "4to6: TOS 0xc0 and 0xb9 -> traffic class 0 outside and inside",
            Report {
                tos: 0xc0,
                ..router4_reports(Pkt {
                    tos: 0xb9,
                    ..udp(40001, 53, 40)
                })
            },
            msg(3, 1),
            msg(1, 0),
        ),
    ];
    run_table("copy_tos=false", &cfg, &cases);
}

// ---------------------------------------------------------------------------------------------
// Counters, with literal numbers
// ---------------------------------------------------------------------------------------------

/// The two scenarios of the brief, with the byte counts written out: each translated error
/// counts as one ICMP packet and the IP length of the result.
#[test]
fn byte_counters_of_errors() {
    require_root();
    let x = Xlat::load("bytes", &config_6791());
    // 6to4: ICMPv6 port unreachable quoting 40 + 8 + 100 bytes; as IPv4: 20 + 8 + 20 + 108.
    let (a, _) = x.run(&client_reports(udp(40001, 9999, 100)).input(Dir::V6ToV4, msg(1, 4)));
    assert_eq!(a, XDP_PASS, "6to4 port unreachable");
    // 4to6: ICMPv4 time exceeded quoting 20 + 8 + 32 bytes and carrying 8 bytes of options
    // itself; as IPv6: 40 + 8 + 40 + 40.
    let r = Report {
        options: vec![1, 7, 7, 4, 0, 0, 0, 0],
        ..expired(router4_reports(udp(40001, 33434, 32)))
    };
    let (a, _) = x.run(&r.input(Dir::V4ToV6, msg(11, 0)));
    assert_eq!(a, XDP_PASS, "4to6 time exceeded");
    // Not counted as translated: a refused 4to6 error (DU code 14).
    let (a, _) = x.run(&r.input(Dir::V4ToV6, msg(3, 14)));
    assert_eq!(a, XDP_DROP, "4to6 host precedence violation");
    let s = x.stats();
    let got: Vec<(Counter, u64)> = all_counters()
        .filter(|c| s.get(*c) != 0)
        .map(|c| (c, s.get(c)))
        .collect();
    let want = vec![
        (Counter::Packets(Dir::V6ToV4, L4Proto::Icmp), 1),
        (Counter::Bytes(Dir::V6ToV4), 156),
        (Counter::Packets(Dir::V4ToV6, L4Proto::Icmp), 1),
        (Counter::Bytes(Dir::V4ToV6), 128),
        (
            Counter::Dropped(Dir::V4ToV6, DropReason::IcmpUntranslatable),
            1,
        ),
    ];
    let mut errors = Vec::new();
    check_counters(&got, &want, &mut errors);
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

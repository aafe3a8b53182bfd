//! The fuzz harness of the loaded dataplane (BPF_PROG_TEST_RUN): generated frames of many
//! shapes (TCP, UDP, echo, ICMP errors and errors inside errors, IPv6 extension header chains
//! long and looping, IPv4 options, fragments of every shape, hop limits and TTLs of 0, 1 and
//! 255, multicast and broadcast, martian and translator-own addresses, stateful flows both
//! ways), mutated (bytes flipped, cut short, lengths lying, bytes appended), run through the
//! real programs (the XDP fast path, the translator link's far end and the TC hook) with
//! stateless and stateful NAT64 configured, with invariants checked on every result (TC's
//! verdicts read as their XDP equivalents):
//!
//! - the action is XDP_PASS, XDP_DROP or XDP_TX;
//! - a drop moves exactly one drop counter, by one;
//! - an answer sent back (XDP_TX from the fast path) is an ICMP error the dataplane generated:
//!   one drop counter and one generated-error counter move;
//! - an untouched pass moves no counter, or only `hop_limit_exceeded` (left to the kernel);
//! - a translation moves exactly one packet counter by one and the byte counter by the output's
//!   IP length, and its output is a well-formed packet of the other family: version and
//!   EtherType agree, the IPv4 header checksum verifies, lengths fit the frame, and the
//!   transport checksum verifies whenever the input's did (translation never breaks a good
//!   checksum).
//!
//! - nothing the RFCs forbid comes out translated: no martian IPv4 address (0/8, 127/8,
//!   multicast, class E, broadcast), no multicast IPv6 address, no IPv4 TTL or IPv6 hop limit
//!   of zero.
//!
//! The test suite runs a bounded, deterministic campaign (`NAT64_FUZZ_ITERATIONS`, default
//! 6000 frames, seed `NAT64_FUZZ_SEED`); longer ones on demand, e.g.
//! `NAT64_FUZZ_ITERATIONS=1000000 cargo xtask test --test fuzz`.
//!
//! Why one file of this size: every file in `tests/tests` is its own test binary, linked against
//! aya and the daemon; one campaign is one binary, organised as generator, oracle and runner.

use nat64_common::{
    Counter, Dir,
    checksum::{compute, sum4, sum16},
};
use nat64_tests::{
    fixtures::{CLIENT4, CLIENT6, SERVER4, SERVER6},
    xdp::{Loaded, XDP_DROP, XDP_PASS, XDP_TX, counter_delta},
};

fn iterations() -> usize {
    std::env::var("NAT64_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6000)
}

fn seed_value() -> u64 {
    std::env::var("NAT64_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x6e61_7436_3474_6573)
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The lab's client and server (see `nat64_tests::fixtures`), as bytes.
const C6: [u8; 16] = CLIENT6.octets();
const S6: [u8; 16] = SERVER6.octets();
const C4: [u8; 4] = CLIENT4.octets();
const S4: [u8; 4] = SERVER4.octets();
/// A stateful client (no EAM mapping) and the pool4 prefix.
const STATEFUL6: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5];
const POOL4: [u8; 4] = [203, 0, 113, 200];

fn csum_v4(src: [u8; 4], dst: [u8; 4], proto: u8, seg: &[u8]) -> u16 {
    let pseudo = if proto == 1 {
        0
    } else {
        sum4(&src) + sum4(&dst) + proto as u32 + seg.len() as u32
    };
    compute(pseudo, seg)
}

fn csum_v6(src: [u8; 16], dst: [u8; 16], nh: u8, seg: &[u8]) -> u16 {
    compute(
        sum16(&src) + sum16(&dst) + nh as u32 + seg.len() as u32,
        seg,
    )
}

/// Transport segment with a correct checksum at `at`, for the given pseudo-header function.
fn with_checksum(mut seg: Vec<u8>, at: usize, f: impl Fn(&[u8]) -> u16) -> Vec<u8> {
    seg[at] = 0;
    seg[at + 1] = 0;
    let c = f(&seg);
    seg[at..at + 2].copy_from_slice(&c.to_be_bytes());
    seg
}

fn seg(proto: u8, len: usize, rng: &mut Rng) -> (Vec<u8>, usize) {
    let mut s: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
    match proto {
        6 => {
            s[12] = 0x50;
            (s, 16)
        }
        17 => {
            let l = len as u16;
            s[4..6].copy_from_slice(&l.to_be_bytes());
            (s, 6)
        }
        _ => (s, 2),
    }
}

fn frame6(src: [u8; 16], dst: [u8; 16], nh: u8, hop: u8, l4: &[u8]) -> Vec<u8> {
    let mut f = vec![
        2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x86, 0xdd, 0x60, 0, 0, 0,
    ];
    f.extend((l4.len() as u16).to_be_bytes());
    f.extend([nh, hop]);
    f.extend(src);
    f.extend(dst);
    f.extend(l4);
    f
}

fn frame4(src: [u8; 4], dst: [u8; 4], proto: u8, ttl: u8, df: bool, l4: &[u8]) -> Vec<u8> {
    let mut h = vec![0x45, 0];
    h.extend(((20 + l4.len()) as u16).to_be_bytes());
    h.extend([0x12, 0x34, if df { 0x40 } else { 0 }, 0, ttl, proto, 0, 0]);
    h.extend(src);
    h.extend(dst);
    let c = compute(0, &h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
    f.extend(h);
    f.extend(l4);
    f
}

/// A valid frame of a random shape: either direction, TCP, UDP, echo or an error quoting a
/// packet, small to large.
fn seed_basic(rng: &mut Rng) -> Vec<u8> {
    let len = [8, 20, 40, 100, 600, 1200, 1400][rng.below(7)];
    let v6 = rng.below(2) == 0;
    match (v6, rng.below(4)) {
        (true, k) if k < 3 => {
            let nh = [6, 17, 58][k];
            let (s, at) = seg(nh, len.max(20), rng);
            let mut s = s;
            if nh == 58 {
                s[0] = 128 + rng.below(2) as u8;
                s[1] = 0;
            }
            frame6(
                C6,
                S6,
                nh,
                64,
                &with_checksum(s, at, |x| csum_v6(C6, S6, nh, x)),
            )
        }
        (true, _) => {
            // Port unreachable from the client about a UDP packet from the server.
            let (u, at) = seg(17, len.max(8), rng);
            let u = with_checksum(u, at, |x| csum_v6(S6, C6, 17, x));
            let inner = frame6(S6, C6, 17, 60, &u)[14..].to_vec();
            let mut e = vec![1, 4, 0, 0, 0, 0, 0, 0];
            e.extend(&inner[..inner.len().min(1232)]);
            frame6(
                C6,
                S6,
                58,
                64,
                &with_checksum(e, 2, |x| csum_v6(C6, S6, 58, x)),
            )
        }
        (false, k) if k < 3 => {
            let proto = [6, 17, 1][k];
            let (s, at) = seg(proto, len.max(20), rng);
            let mut s = s;
            if proto == 1 {
                s[0] = if rng.below(2) == 0 { 8 } else { 0 };
                s[1] = 0;
            }
            let s = with_checksum(s, at, |x| csum_v4(S4, C4, proto, x));
            frame4(S4, C4, proto, 64, rng.below(2) == 0, &s)
        }
        (false, _) => {
            // Time exceeded from a router about a UDP packet from the client.
            let (u, at) = seg(17, len.max(8), rng);
            let u = with_checksum(u, at, |x| csum_v4(C4, S4, 17, x));
            let inner = frame4(C4, S4, 17, 1, true, &u)[14..].to_vec();
            let mut e = vec![11, 0, 0, 0, 0, 0, 0, 0];
            e.extend(&inner[..inner.len().min(548)]);
            let e = with_checksum(e, 2, |x| csum_v4([203, 0, 113, 1], C4, 1, x));
            frame4([203, 0, 113, 1], C4, 1, 64, false, &e)
        }
    }
}

/// IPv6 extension headers before `nh`: `count` of them, random kinds (hop-by-hop, destination
/// options, routing with or without segments left, fragment), each of 8 bytes.
fn ext_chain(count: usize, last: u8, rng: &mut Rng) -> (u8, Vec<u8>) {
    let kinds: Vec<u8> = (0..count).map(|_| [0, 60, 43, 44][rng.below(4)]).collect();
    let mut out = Vec::new();
    for (i, k) in kinds.iter().enumerate() {
        let next = kinds.get(i + 1).copied().unwrap_or(last);
        let mut h = vec![next, 0, 0, 0, 0, 0, 0, 0];
        match k {
            43 => {
                h[2] = 0; // type 0
                h[3] = rng.below(2) as u8; // segments left
            }
            44 => {
                let off = (rng.below(4) as u16) << 3;
                h[2..4].copy_from_slice(&(off | rng.below(2) as u16).to_be_bytes());
                h[4..8].copy_from_slice(&(rng.next() as u32).to_be_bytes());
            }
            _ => h[2] = 1, // a PadN option filling the header
        }
        out.extend(h);
    }
    (kinds.first().copied().unwrap_or(last), out)
}

/// A frame of any shape the harness knows, valid before mutation.
fn seed(rng: &mut Rng) -> Vec<u8> {
    let udp6 = |rng: &mut Rng, src: [u8; 16], dst: [u8; 16]| {
        let (u, at) = seg(17, 8 + rng.below(200), rng);
        with_checksum(u, at, |x| csum_v6(src, dst, 17, x))
    };
    let udp4 = |rng: &mut Rng, src: [u8; 4], dst: [u8; 4]| {
        let (u, at) = seg(17, 8 + rng.below(200), rng);
        with_checksum(u, at, |x| csum_v4(src, dst, 17, x))
    };
    match rng.below(16) {
        // Extension header chains, short to far beyond what the dataplane walks.
        0 => {
            let u = udp6(rng, C6, S6);
            let (nh, mut chain) = ext_chain([1, 2, 3, 8, 16][rng.below(5)], 17, rng);
            chain.extend(u);
            frame6(C6, S6, nh, 64, &chain)
        }
        // IPv6 fragments: first, middle, last, atomic.
        1 => {
            let u = udp6(rng, C6, S6);
            let off = [0u16, 8, 64][rng.below(3)];
            let mf = rng.below(2) as u16;
            let mut h = vec![17, 0];
            h.extend((off << 3 | mf).to_be_bytes());
            h.extend((rng.next() as u32).to_be_bytes());
            h.extend(u);
            frame6(C6, S6, 44, 64, &h)
        }
        // IPv4 with options (some source routes), and IPv4 fragments.
        2 | 3 => {
            let u = udp4(rng, S4, C4);
            let mut f = frame4(S4, C4, 17, 64, rng.below(2) == 0, &u);
            if rng.below(2) == 0 {
                let words = 1 + rng.below(10);
                let mut opts: Vec<u8> = (0..words * 4).map(|_| rng.next() as u8).collect();
                opts[0] = [1, 131, 137, 7, 68][rng.below(5)];
                opts[1] = (opts.len() as u8).min(opts[1].max(2));
                let ip_len = 20 + opts.len() + u.len();
                f[14] = 0x45 + words as u8;
                f[16..18].copy_from_slice(&(ip_len as u16).to_be_bytes());
                let tail = f.split_off(34);
                f.extend(opts);
                f.extend(tail);
            } else {
                let off = [0u16, 1, 100][rng.below(3)];
                let mf = if rng.below(2) == 0 { 0x2000 } else { 0 };
                f[20..22].copy_from_slice(&(mf | off).to_be_bytes());
            }
            fix_ipv4_header(&mut f);
            f
        }
        // An ICMP error quoting an ICMP error.
        4 => {
            let inner_err = seed_basic_error6(rng);
            let mut e = vec![1, 4, 0, 0, 0, 0, 0, 0];
            e.extend(&inner_err[14..inner_err.len().min(14 + 600)]);
            frame6(
                C6,
                S6,
                58,
                64,
                &with_checksum(e, 2, |x| csum_v6(C6, S6, 58, x)),
            )
        }
        5 => {
            let inner = seed_basic(rng);
            let mut e = vec![3, 3, 0, 0, 0, 0, 0, 0];
            e.extend(&inner[14..inner.len().min(14 + 500)]);
            let e = with_checksum(e, 2, |x| csum_v4(S4, C4, 1, x));
            frame4(S4, C4, 1, 64, false, &e)
        }
        // Hop limits and TTLs at the edges.
        6 => {
            let u = udp6(rng, C6, S6);
            frame6(C6, S6, 17, [0, 1, 2, 255][rng.below(4)], &u)
        }
        7 => {
            let u = udp4(rng, S4, C4);
            frame4(S4, C4, 17, [0, 1, 2, 255][rng.below(4)], true, &u)
        }
        // Martian, multicast, broadcast and translator-own addresses.
        8 => {
            let mut dst = S6;
            dst[12..16].copy_from_slice(
                &[
                    [127, 0, 0, 1],
                    [0, 0, 0, 1],
                    [224, 0, 0, 1],
                    [240, 0, 0, 1],
                    [255, 255, 255, 255],
                    [192, 0, 2, 1],
                ][rng.below(6)],
            );
            let u = udp6(rng, C6, dst);
            frame6(C6, dst, 17, 64, &u)
        }
        9 => {
            let src = [
                [127, 0, 0, 1],
                [0, 0, 0, 0],
                [224, 0, 0, 1],
                [255, 255, 255, 255],
                [198, 51, 100, 255],
            ][rng.below(5)];
            let dst = if rng.below(2) == 0 {
                C4
            } else {
                [255, 255, 255, 255]
            };
            let u = udp4(rng, src, dst);
            frame4(src, dst, 17, 64, true, &u)
        }
        10 => {
            let dst = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
            let u = udp6(rng, C6, dst);
            frame6(C6, dst, 17, 64, &u)
        }
        // Stateful flows: new ones outward, answers (and strangers) inward.
        11 | 12 => {
            let mut src = STATEFUL6;
            src[15] = rng.below(4) as u8;
            let nh = [6, 17, 58][rng.below(3)];
            let (mut s, at) = seg(nh, 20 + rng.below(100), rng);
            if nh == 58 {
                s[0] = 128;
                s[1] = 0;
            }
            s[0..2].copy_from_slice(&(1024 + rng.below(8) as u16).to_be_bytes());
            let s = with_checksum(s, at, |x| csum_v6(src, S6, nh, x));
            frame6(src, S6, nh, 64, &s)
        }
        13 => {
            let mut dst = POOL4;
            dst[3] += rng.below(4) as u8;
            let (mut s, at) = seg(17, 8 + rng.below(100), rng);
            s[2..4].copy_from_slice(&(1024 + rng.below(64000) as u16).to_be_bytes());
            let s = with_checksum(s, at, |x| csum_v4(S4, dst, 17, x));
            frame4(S4, dst, 17, 64, true, &s)
        }
        _ => seed_basic(rng),
    }
}

/// Port unreachable from the client about a UDP packet from the server (an IPv6 frame).
fn seed_basic_error6(rng: &mut Rng) -> Vec<u8> {
    let (u, at) = seg(17, 8 + rng.below(100), rng);
    let u = with_checksum(u, at, |x| csum_v6(S6, C6, 17, x));
    let inner = frame6(S6, C6, 17, 60, &u)[14..].to_vec();
    let mut e = vec![1, 4, 0, 0, 0, 0, 0, 0];
    e.extend(&inner);
    frame6(
        C6,
        S6,
        58,
        64,
        &with_checksum(e, 2, |x| csum_v6(C6, S6, 58, x)),
    )
}

/// Recomputes the IPv4 header checksum of a frame (after its header was edited).
fn fix_ipv4_header(f: &mut [u8]) {
    let ihl = usize::from(f[14] & 0x0f) * 4;
    if f.len() < 14 + ihl {
        return;
    }
    f[24] = 0;
    f[25] = 0;
    let c = compute(0, &f[14..14 + ihl]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
}

/// Whether a translated packet carries an address or a hop count that RFC 7915 and RFC 6052
/// never let out (section 4.1 and 5.1: martians are dropped; a packet whose hop limit or TTL
/// would reach zero is not forwarded).
fn forbidden(ip: &[u8]) -> Option<String> {
    match ip[0] >> 4 {
        4 => {
            for (what, a) in [("source", &ip[12..16]), ("destination", &ip[16..20])] {
                let martian = a[0] == 0 || a[0] == 127 || a[0] >= 224 || a == [255, 255, 255, 255];
                if martian {
                    return Some(format!("IPv4 {what} {a:?} is martian"));
                }
            }
            (ip[8] == 0).then(|| "TTL 0".to_string())
        }
        6 => {
            if ip[24] == 0xff || ip[8] == 0xff {
                return Some("IPv6 multicast address".into());
            }
            (ip[7] == 0).then(|| "hop limit 0".to_string())
        }
        _ => None,
    }
}

fn mutate(f: &mut Vec<u8>, rng: &mut Rng) {
    for _ in 0..1 + rng.below(3) {
        match rng.below(6) {
            // Anywhere, headers most of all.
            0 | 1 => {
                let i = if rng.below(3) == 0 {
                    rng.below(f.len())
                } else {
                    rng.below(f.len().min(100))
                };
                f[i] ^= 1 << rng.below(8);
            }
            2 => {
                let i = rng.below(f.len().min(100));
                f[i] = rng.next() as u8;
            }
            // Never below an Ethernet header: no driver delivers less, and test_run refuses it.
            3 => f.truncate(rng.below(f.len()).max(14)),
            4 => f.extend((0..rng.below(64)).map(|_| rng.next() as u8)),
            _ => {} // keep this one valid
        }
    }
}

/// Whether the transport checksum of the IP packet `ip` verifies (None: not checkable, e.g. a
/// fragment or an unknown protocol).
fn l4_ok(ip: &[u8]) -> Option<bool> {
    match ip.first()? >> 4 {
        4 if ip.len() >= 20 => {
            let ihl = (ip[0] & 0x0f) as usize * 4;
            let tot = u16::from_be_bytes([*ip.get(2)?, *ip.get(3)?]) as usize;
            let frag = u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff;
            if frag != 0 || ihl < 20 || tot > ip.len() || tot < ihl {
                return None;
            }
            let (src, dst) = (ip[12..16].try_into().ok()?, ip[16..20].try_into().ok()?);
            let seg = &ip[ihl..tot];
            match ip[9] {
                17 if seg.get(6..8) == Some(&[0, 0][..]) => None,
                p @ (1 | 6 | 17) => Some(csum_v4(src, dst, p, seg) == 0),
                _ => None,
            }
        }
        6 if ip.len() >= 40 => {
            let plen = u16::from_be_bytes([*ip.get(4)?, *ip.get(5)?]) as usize;
            if 40 + plen > ip.len() {
                return None;
            }
            let nh = ip[6];
            let (src, dst) = (ip[8..24].try_into().ok()?, ip[24..40].try_into().ok()?);
            match nh {
                6 | 17 | 58 => Some(csum_v6(src, dst, nh, &ip[40..40 + plen]) == 0),
                _ => None,
            }
        }
        _ => None,
    }
}

#[test]
fn generated_and_mutated_frames_keep_every_invariant() {
    let x = Loaded::load(
        "fuzz",
        "pool6 = \"64:ff9b::/96\"\npool6791 = \"192.0.2.1\"\n[[eam]]\nipv6 = \"2001:db8:6::100/120\"\nipv4 = \"198.51.100.0/24\"\n\
         [stateful]\npool4 = \"203.0.113.200/30\"\nports = \"1024-1100\"\nmax_bindings = 512\nper_client_limit = 64\n",
    );
    let iterations = iterations();
    let mut rng = Rng(seed_value());
    let (mut translated, mut dropped, mut untouched, mut answered) = (0, 0, 0, 0);
    let (mut tc_runs, mut tc_refused) = (0, 0);
    let mut refused_example = None;
    for n in 0..iterations {
        let mut f = seed(&mut rng);
        mutate(&mut f, &mut rng);
        // Mostly the XDP fast path; the translator link's far end and the TC hook for some.
        // (The kernel's socket-buffer harness refuses a frame shorter than an Ethernet header,
        // which XDP's takes; those stay with XDP.)
        let pick = match rng.below(5) {
            1 if f.len() < 14 => 2,
            p => p,
        };
        let on_link = pick == 0;
        let program = match pick {
            0 => nat64_daemon::dataplane::LINK_PROGRAM,
            1 => nat64_daemon::dataplane::TC_PROGRAM,
            _ => nat64_daemon::dataplane::XDP_PROGRAM,
        };
        let input_ok = f.get(14..).and_then(l4_ok);
        let before = x.stats();
        let (action, out) = match pick {
            1 => match x.try_run_tc(&f, 0) {
                Ok(r) => {
                    tc_runs += 1;
                    r
                }
                Err(e) => {
                    // Refused by the kernel's harness before the program ran.
                    tc_refused += 1;
                    refused_example.get_or_insert_with(|| format!("{e:?}: {:02x?}", &f));
                    continue;
                }
            },
            _ => x.run_program(program, &f),
        };
        let moved = counter_delta(&before, &x.stats());
        let ctx = || {
            format!(
                "iteration {n} ({program}), input {:02x?}, counters {moved:?}",
                &f[..f.len().min(96)]
            )
        };
        // XDP_TX is an answer the dataplane generated (either program), or, on the link, a
        // translation sent back into the link.
        let generated = moved
            .iter()
            .any(|(c, _)| matches!(c, Counter::Generated(_)));
        let translation =
            action == XDP_PASS && out != f || action == XDP_TX && on_link && !generated;
        match action {
            XDP_DROP => {
                dropped += 1;
                assert!(
                    moved.len() == 1 && matches!(moved[0], (Counter::Dropped(..), 1)),
                    "a drop must move exactly one drop counter\n{}",
                    ctx()
                );
            }
            XDP_PASS if out == f => {
                untouched += 1;
                assert!(
                    moved.is_empty()
                        || (moved.len() == 1
                            && matches!(
                                moved[0],
                                (
                                    Counter::Dropped(_, nat64_common::DropReason::HopLimitExceeded)
                                        | Counter::Handoff(..),
                                    1
                                )
                            )),
                    "an untouched pass moved counters\n{}",
                    ctx()
                );
            }
            XDP_TX if generated => {
                // An error the dataplane answers itself: Fragmentation Needed, or Address
                // Unreachable for a refused stateful flow.
                answered += 1;
                assert!(
                    moved.len() == 2
                        && moved
                            .iter()
                            .any(|(c, d)| matches!(c, Counter::Generated(_)) && *d == 1)
                        && moved
                            .iter()
                            .any(|(c, d)| matches!(c, Counter::Dropped(..)) && *d == 1),
                    "an answer must count one drop and one generated error\n{}",
                    ctx()
                );
            }
            XDP_PASS | XDP_TX => {}
            a => panic!("action {a}\n{}", ctx()),
        }
        if !translation {
            continue;
        }
        translated += 1;
        let ip = &out[14..];
        let ethertype = u16::from_be_bytes([out[12], out[13]]);
        let (dir, ip_len) = match ip[0] >> 4 {
            4 => {
                assert_eq!(ethertype, 0x0800, "{}", ctx());
                assert_eq!(
                    compute(0, &ip[..(ip[0] & 0x0f) as usize * 4]),
                    0,
                    "IPv4 header checksum\n{}",
                    ctx()
                );
                (Dir::V6ToV4, u16::from_be_bytes([ip[2], ip[3]]) as usize)
            }
            6 => {
                assert_eq!(ethertype, 0x86dd, "{}", ctx());
                (
                    Dir::V4ToV6,
                    40 + u16::from_be_bytes([ip[4], ip[5]]) as usize,
                )
            }
            v => panic!("translated output of IP version {v}\n{}", ctx()),
        };
        assert!(
            ip_len <= ip.len(),
            "IP length {ip_len} beyond the frame\n{}",
            ctx()
        );
        if let Some(why) = forbidden(ip) {
            panic!("translated what the RFC forbids: {why}\n{}", ctx());
        }
        let packets = moved
            .iter()
            .filter(|(c, d)| matches!(c, Counter::Packets(d2, _) if *d2 == dir) && *d == 1)
            .count();
        let bytes = moved
            .iter()
            .find(|(c, _)| *c == Counter::Bytes(dir))
            .map(|(_, d)| *d);
        // An ICMP error whose source has no mapping also counts its RFC 6791 source.
        let rfc6791 = moved
            .iter()
            .filter(|(c, d)| *c == Counter::Rfc6791(dir) && *d == 1)
            .count();
        assert!(
            moved.len() == 2 + rfc6791 && packets == 1 && bytes == Some(ip_len as u64),
            "a translation must move one packet counter and the bytes ({ip_len})\n{}",
            ctx()
        );
        if input_ok == Some(true) {
            assert_ne!(
                l4_ok(ip),
                Some(false),
                "a good transport checksum went bad\n{}",
                ctx()
            );
        }
    }
    // The run must have exercised every outcome, or it proves little.
    assert!(
        translated > iterations / 10 && dropped > iterations / 20 && untouched > iterations / 20,
        "translated {translated}, dropped {dropped}, untouched {untouched}"
    );
    // The TC harness must really have run most of the frames given to it (it refuses about
    // one in ten, with IP headers cut short, which XDP's takes).
    assert!(
        tc_runs > iterations / 8 && tc_refused * 5 < tc_runs,
        "TC: {tc_runs} run, {tc_refused} refused by the harness, e.g. {refused_example:?}"
    );
    println!(
        "{iterations} frames: {translated} translated, {dropped} dropped, {untouched} passed untouched, {answered} answered; {tc_runs} through nat64_tc ({tc_refused} refused by the kernel's harness)"
    );
}

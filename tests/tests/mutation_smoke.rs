//! A bounded, deterministic mutation smoke test of the loaded dataplane (BPF_PROG_TEST_RUN):
//! valid frames of many shapes, mutated (bytes flipped, cut short, lengths lying, bytes
//! appended), run through the real program, with invariants checked on every result:
//!
//! - the action is XDP_PASS or XDP_DROP;
//! - a drop moves exactly one drop counter, by one;
//! - an untouched pass moves no counter, or only `hop_limit_exceeded` (left to the kernel);
//! - a translation moves exactly one packet counter by one and the byte counter by the output's
//!   IP length, and its output is a well-formed packet of the other family: version and
//!   EtherType agree, the IPv4 header checksum verifies, lengths fit the frame, and the
//!   transport checksum verifies whenever the input's did (translation never breaks a good
//!   checksum).
//!
//! The longer fuzzing campaign is issue #9; this is the bounded part that runs with the tests.

use nat64_common::{
    Counter, Dir,
    checksum::{compute, sum4, sum16},
};
use nat64_tests::xdp::{Loaded, XDP_DROP, XDP_PASS};

const ITERATIONS: usize = 4000;

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

const C6: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x02,
];
const S6: [u8; 16] = [0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0, 192, 0, 2, 2];
const C4: [u8; 4] = [198, 51, 100, 2];
const S4: [u8; 4] = [192, 0, 2, 2];

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
fn seed(rng: &mut Rng) -> Vec<u8> {
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
fn mutated_frames_keep_every_invariant() {
    let x = Loaded::load(
        "mutation smoke",
        "pool6 = \"64:ff9b::/96\"\npool6791 = \"192.0.2.1\"\n[[eam]]\nipv6 = \"2001:db8:6::100/120\"\nipv4 = \"198.51.100.0/24\"\n",
    );
    let mut rng = Rng(0x6e61_7436_3474_6573);
    let (mut translated, mut dropped, mut untouched) = (0, 0, 0);
    for n in 0..ITERATIONS {
        let mut f = seed(&mut rng);
        mutate(&mut f, &mut rng);
        let input_ok = f.get(14..).and_then(l4_ok);
        let (action, out, moved) = x.run_counted(&f);
        let ctx = || format!("iteration {n}, input {:02x?}", &f[..f.len().min(80)]);
        match action {
            XDP_DROP => {
                dropped += 1;
                assert!(
                    moved.len() == 1 && matches!(moved[0], (Counter::Dropped(..), 1)),
                    "a drop must move exactly one drop counter: {moved:?}\n{}",
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
                                    Counter::Dropped(_, nat64_common::DropReason::HopLimitExceeded),
                                    1
                                )
                            )),
                    "an untouched pass moved {moved:?}\n{}",
                    ctx()
                );
            }
            XDP_PASS => {
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
                    "IP length {ip_len} beyond the frame ({})\n{}",
                    ip.len(),
                    ctx()
                );
                let packets = moved
                    .iter()
                    .filter(|(c, d)| matches!(c, Counter::Packets(d2, _) if *d2 == dir) && *d == 1)
                    .count();
                let bytes = moved
                    .iter()
                    .find(|(c, _)| *c == Counter::Bytes(dir))
                    .map(|(_, d)| *d);
                assert!(
                    moved.len() == 2 && packets == 1 && bytes == Some(ip_len as u64),
                    "a translation must move one packet counter and the bytes ({ip_len}): {moved:?}\n{}",
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
            a => panic!("action {a}\n{}", ctx()),
        }
    }
    // The run must have exercised every outcome, or it proves little.
    assert!(
        translated > ITERATIONS / 10 && dropped > ITERATIONS / 20 && untouched > ITERATIONS / 20,
        "translated {translated}, dropped {dropped}, untouched {untouched}"
    );
    println!(
        "{ITERATIONS} frames: {translated} translated, {dropped} dropped, {untouched} passed untouched"
    );
}

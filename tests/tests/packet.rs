//! Packet-level tests of the XDP dataplane, run in the kernel with `BPF_PROG_TEST_RUN`.
//!
//! Every input frame and every expected output frame is built with etherparse (the packet
//! model of `nat64_tests::fixtures`), with the checksums computed from scratch for the family
//! the frame belongs to. An expected frame is never derived from the program's output, with
//! one exception: the IPv4 Identification of a DF=0 packet, which the translator picks at
//! random by design. It is copied from the output into the expected header before etherparse
//! computes the expected header checksum, and the expected header has DF=0, so the comparison
//! still checks the flag.
//!
//! Each case then
//! - compares the output frame with the expected one byte for byte (a mismatch prints every
//!   differing offset, the header field it belongs to, and both frames in hex),
//! - parses the output with etherparse and recomputes its checksums (IPv4 header, TCP, UDP,
//!   ICMP, ICMPv6),
//! - checks the counters: a translated packet moves exactly `Packets(dir, proto)` by one and
//!   `Bytes(dir)` by the IP length of the result, a drop moves exactly `Dropped(dir, reason)` by
//!   one, a packet that is not ours moves nothing.
//!
//! Every test function loads its own dataplane (the real embedded eBPF object) from a TOML
//! configuration, so the tests can run in parallel. The ingress interface of `BPF_PROG_TEST_RUN`
//! is loopback (ifindex 1), which is where per-interface settings go.
//!
//! Addresses come from documentation ranges only: the IPv6 client 2001:db8:6::102 is
//! 198.51.100.2 in IPv4 through the explicit address mapping 2001:db8:6::100/120 <->
//! 198.51.100.0/24 (RFC 7757), and the IPv4 server 192.0.2.2 is 64:ff9b::c000:202 in IPv6
//! through the Well-Known Prefix (RFC 6052). The drop tests add 2001:db8:e::/120 <->
//! 233.252.0.0/24 (MCAST-TEST-NET, RFC 5771) to make a multicast destination mappable; the RFC
//! 6052 /32 case uses 3fff::/20 (RFC 9637) for its client, see `rfc6052_prefix_lengths`.
//!
//! Why one file of this size: every file in `tests/tests` is its own test binary, linked against
//! aya and the daemon; the suite is one katran-style table of cases over one loaded program. The
//! packet model is `tests/src/fixtures.rs`.

use std::net::{Ipv4Addr, Ipv6Addr};

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use nat64_common::{Counter, Dir, DropReason, Handoff, L4Proto};
use nat64_daemon::stats::all_counters;
use nat64_tests::{
    fixtures::{
        CLIENT4, CLIENT6, Csum, EAM_CLIENT, ETH_P_IP, ETH_P_IPV6, MAC_SRC, Pkt, Pseudo, SERVER4,
        SERVER6, a4, a6, as_v4, as_v6, base_config, carried_error, echo, eth, icmp, linux4,
        partial_csum, pattern, raw, syn, syn_ack, tcp_data, udp,
    },
    frames::diff,
    require_root,
    xdp::{
        Loaded, XDP_DROP, XDP_PASS, XDP_TX, action_name, check_counters, check_each, counter_delta,
        finish, outcome, render_moved,
    },
};

// ---------------------------------------------------------------------------------------------
// Addresses and configurations
// ---------------------------------------------------------------------------------------------

/// EtherTypes of frames the translator leaves alone (the IP ones are in the fixtures).
const ETH_P_ARP: u16 = 0x0806;
const ETH_P_8021Q: u16 = 0x8100;

/// `base_config` plus an EAM entry for MCAST-TEST-NET, so that a multicast address can be a
/// mapped destination (otherwise no IPv4 destination outside the EAM table is ours at all).
fn drop_config() -> String {
    format!(
        "{}\n[[eam]]\nipv6 = \"2001:db8:e::/120\"\nipv4 = \"233.252.0.0/24\"\n",
        base_config()
    )
}

// ---------------------------------------------------------------------------------------------
// Cases and how they are checked
// ---------------------------------------------------------------------------------------------

enum Want {
    /// Translated to IPv4; the expected frame is `pkt.v4(src, dst)`, with the output's
    /// identification when `pkt.df` is clear.
    V4 {
        pkt: Pkt,
        src: Ipv4Addr,
        dst: Ipv4Addr,
    },
    /// Translated to IPv6; the expected frame is `pkt.v6(src, dst)`.
    V6 {
        pkt: Pkt,
        src: Ipv6Addr,
        dst: Ipv6Addr,
    },
    /// XDP_PASS with the frame untouched and exactly this counter moved by one: not
    /// translated, left to the kernel (an expired hop limit, which the kernel answers with
    /// Time Exceeded).
    ToKernel(Dir, DropReason),
    /// XDP_PASS with the frame untouched, no counter moved.
    Unchanged,
    /// XDP_DROP, exactly this counter moved by one.
    Drop(Dir, DropReason),
}

struct Case {
    name: String,
    input: Vec<u8>,
    want: Want,
}

/// An IPv6 packet in, the IPv4 packet RFC 7915 makes of it out.
fn case_6to4(
    name: &str,
    p: &Pkt,
    (src6, dst6): (Ipv6Addr, Ipv6Addr),
    (src4, dst4): (Ipv4Addr, Ipv4Addr),
    copy_tos: bool,
) -> Case {
    Case {
        name: name.to_string(),
        input: p.v6(src6, dst6),
        want: Want::V4 {
            pkt: as_v4(p, copy_tos),
            src: src4,
            dst: dst4,
        },
    }
}

/// An IPv4 packet in, the IPv6 packet RFC 7915 makes of it out.
fn case_4to6(
    name: &str,
    p: &Pkt,
    (src4, dst4): (Ipv4Addr, Ipv4Addr),
    (src6, dst6): (Ipv6Addr, Ipv6Addr),
    copy_tos: bool,
) -> Case {
    Case {
        name: name.to_string(),
        input: p.v4(src4, dst4),
        want: Want::V6 {
            pkt: as_v6(p, copy_tos),
            src: src6,
            dst: dst6,
        },
    }
}

fn case_drop(name: &str, input: Vec<u8>, dir: Dir, reason: DropReason) -> Case {
    Case {
        name: name.to_string(),
        input,
        want: Want::Drop(dir, reason),
    }
}

/// Hop limit or TTL expiring here: left untouched to the kernel, counted.
fn case_expired(name: &str, input: Vec<u8>, dir: Dir) -> Case {
    Case {
        name: name.to_string(),
        input,
        want: Want::ToKernel(dir, DropReason::HopLimitExceeded),
    }
}

fn case_pass(name: &str, input: Vec<u8>) -> Case {
    Case {
        name: name.to_string(),
        input,
        want: Want::Unchanged,
    }
}

/// A loaded dataplane under test.
/// The loaded dataplane (see `nat64_tests::xdp::Loaded`), with this file's case checks.
/// With `link`, cases run through `nat64_link` instead of the fast path, and a translated
/// packet is expected back out (`XDP_TX`) with its MAC addresses swapped and one more hop.
struct Xlat {
    loaded: Loaded,
    link: bool,
    /// Run through `nat64_tc` (the TC ingress hook) instead of `nat64_xdp`.
    tc: bool,
}

impl std::ops::Deref for Xlat {
    type Target = Loaded;
    fn deref(&self) -> &Loaded {
        &self.loaded
    }
}

impl std::ops::DerefMut for Xlat {
    fn deref_mut(&mut self) -> &mut Loaded {
        &mut self.loaded
    }
}

/// What the far end of the translator link makes of the fast path's expected frame: the MAC
/// addresses swapped (back to where it came from).
fn reflected(mut frame: Vec<u8>) -> Vec<u8> {
    let (dst, src) = frame.split_at_mut(6);
    dst.swap_with_slice(&mut src[..6]);
    frame
}

impl Xlat {
    fn load(label: &str, toml: &str) -> Self {
        Self {
            loaded: Loaded::load(label, toml),
            link: false,
            tc: false,
        }
    }

    /// Runs one case; `Err` describes everything that differs.
    fn check(&self, case: &Case) -> Result<(), String> {
        let before = self.stats();
        let program = if self.link {
            nat64_daemon::dataplane::LINK_PROGRAM
        } else {
            nat64_daemon::dataplane::XDP_PROGRAM
        };
        let (action, out) = if self.tc {
            self.run_tc(&case.input, 0)
        } else {
            self.run_program(program, &case.input)
        };
        let translated = if self.link { XDP_TX } else { XDP_PASS };
        let link_hop = |mut p: Pkt| {
            if self.link {
                p.hop = p.hop.saturating_add(1);
            }
            p
        };
        let link_frame = |f: Vec<u8>| if self.link { reflected(f) } else { f };
        let after = self.stats();
        let moved = counter_delta(&before, &after);
        let mut errors = Vec::new();

        let expect_action = |want: u32, errors: &mut Vec<String>| {
            if action != want {
                errors.push(format!(
                    "action {} (expected {}); counters moved: {}",
                    action_name(action),
                    action_name(want),
                    render_moved(&moved)
                ));
            }
        };

        // At TC, what the TC program leaves to the translator link is handed on untouched,
        // counted as such: a packet XDP translates, and one it drops for a reason found after
        // that decision (either is accepted there).
        let slow = self.tc
            && slow_in_tc(&case.input)
            && matches!(
                case.want,
                Want::V4 { .. } | Want::V6 { .. } | Want::Drop(..)
            );
        let handed_off = action == XDP_PASS
            && out == case.input
            && moved
                == [(
                    Counter::Handoff(input_dir(&case.input), Handoff::SlowPath),
                    1,
                )];
        match &case.want {
            _ if slow && (handed_off || !matches!(case.want, Want::Drop(..))) => {
                if !handed_off {
                    errors.push(format!(
                        "expected to be handed to the translator link untouched (slow_path); \
                         action {}, counters moved: {}{}",
                        action_name(action),
                        render_moved(&moved),
                        if out == case.input {
                            String::new()
                        } else {
                            format!("\n{}", diff(&case.input, &out))
                        }
                    ));
                }
            }
            Want::Unchanged => {
                expect_action(XDP_PASS, &mut errors);
                if action == XDP_PASS && out != case.input {
                    errors.push(format!(
                        "the frame was modified\n{}",
                        diff(&case.input, &out)
                    ));
                }
                check_counters(&moved, &[], &mut errors);
            }
            Want::ToKernel(dir, reason) => {
                expect_action(XDP_PASS, &mut errors);
                if action == XDP_PASS && out != case.input {
                    errors.push(format!(
                        "the frame was modified\n{}",
                        diff(&case.input, &out)
                    ));
                }
                check_counters(&moved, &[(Counter::Dropped(*dir, *reason), 1)], &mut errors);
            }
            Want::Drop(dir, reason) => {
                expect_action(XDP_DROP, &mut errors);
                check_counters(&moved, &[(Counter::Dropped(*dir, *reason), 1)], &mut errors);
            }
            Want::V4 { pkt, src, dst } => {
                expect_action(translated, &mut errors);
                let mut pkt = link_hop(pkt.clone());
                if !pkt.df && out.len() >= 14 + 20 {
                    // Random by design when DF=0; everything else,
                    // including DF=0 itself and the header checksum over this ID, is checked.
                    pkt.id = u16::from_be_bytes([out[18], out[19]]);
                }
                let expected = link_frame(pkt.v4(*src, *dst));
                compare_frames(&expected, &out, &mut errors);
                if pkt.full_checksums()
                    && let Err(e) = verify_checksums(&out)
                {
                    errors.push(e);
                }
                check_counters(
                    &moved,
                    &[
                        (Counter::Packets(Dir::V6ToV4, pkt.counted_as()), 1),
                        (Counter::Bytes(Dir::V6ToV4), (20 + pkt.l4_len()) as u64),
                    ],
                    &mut errors,
                );
            }
            Want::V6 { pkt, src, dst } => {
                expect_action(translated, &mut errors);
                let pkt = link_hop(pkt.clone());
                let expected = link_frame(pkt.v6(*src, *dst));
                compare_frames(&expected, &out, &mut errors);
                if pkt.full_checksums()
                    && let Err(e) = verify_checksums(&out)
                {
                    errors.push(e);
                }
                check_counters(
                    &moved,
                    &[
                        (Counter::Packets(Dir::V4ToV6, pkt.counted_as()), 1),
                        (Counter::Bytes(Dir::V4ToV6), (40 + pkt.l4_len()) as u64),
                    ],
                    &mut errors,
                );
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
// Comparing and verifying frames
// ---------------------------------------------------------------------------------------------

fn compare_frames(expected: &[u8], got: &[u8], errors: &mut Vec<String>) {
    if expected != got {
        errors.push(format!(
            "output differs from the expected frame\n{}",
            diff(expected, got)
        ));
    }
}

// ---------------------------------------------------------------------------------------------
// Translation, IPv6 to IPv4 (RFC 7915 section 5)
// ---------------------------------------------------------------------------------------------

/// Client to server through the lab translator (copy_tos on).
fn c2s(name: &str, p: &Pkt) -> Case {
    case_6to4(name, p, (CLIENT6, SERVER6), (CLIENT4, SERVER4), true)
}

/// Server to client through the lab translator (copy_tos on).
fn s2c(name: &str, p: &Pkt) -> Case {
    case_4to6(name, p, (SERVER4, CLIENT4), (SERVER6, CLIENT6), true)
}

#[test]
fn translates_6to4() {
    require_root();
    run_table("6to4", &base_config(), &cases_6to4());
}

fn cases_6to4() -> Vec<Case> {
    let tc = Pkt {
        tos: 0xb9, // DSCP EF, ECN ECT(1)
        flow: 0x5_a5a5,
        ..tcp_data(40000, 80, 100)
    };
    let cases = vec![
        c2s("TCP SYN with options", &syn(40000, 80)),
        c2s("TCP data segment, 512 bytes", &tcp_data(40000, 80, 512)),
        c2s("TCP data, odd length (33 bytes)", &tcp_data(40000, 80, 33)),
        c2s("UDP, 100 bytes", &udp(5353, 53, 100)),
        // RFC 8200 forbids it, but IPv4 reads zero as "no checksum": kept, not invented.
        c2s(
            "UDP with zero checksum stays zero",
            &Pkt {
                csum: Csum::Zero,
                ..udp(5353, 53, 64)
            },
        ),
        c2s("ICMPv6 echo request -> ICMP echo request", &echo(false, 56)),
        c2s("ICMPv6 echo reply -> ICMP echo reply", &echo(true, 56)),
        c2s("traffic class copied to TOS, flow label dropped", &tc),
        c2s(
            "hop limit 2 -> TTL 2 (not decremented here)",
            &Pkt {
                hop: 2,
                ..udp(5353, 53, 20)
            },
        ),
        // RFC 7915 section 5.1: the protocol is copied and the payload forwarded as is.
        c2s(
            "other protocol (GRE) copied as is",
            &raw(47, pattern(36, 1)),
        ),
        case_6to4(
            "source through pool6 (64:ff9b::203.0.113.7)",
            &udp(4000, 53, 30),
            (a6("64:ff9b::cb00:7107"), SERVER6),
            (a4("203.0.113.7"), SERVER4),
            true,
        ),
        case_6to4(
            "destination through EAM (2001:db8:6::1a0 -> 198.51.100.160)",
            &echo(false, 16),
            (CLIENT6, a6("2001:db8:6::1a0")),
            (CLIENT4, a4("198.51.100.160")),
            true,
        ),
    ];
    cases
}

/// RFC 7915 section 5.1: DF=0 up to 1260 bytes of IPv4 (so IPv4 routers may fragment it down
/// to a path MTU under 1280), DF=1 above. The ID of an atomic (DF=1) packet means nothing
/// (RFC 6864) and the translator writes zero; with DF=0 it is random.
#[test]
fn df_and_identification_6to4() {
    require_root();
    // UDP: 20 (IPv4) + 8 (UDP) + n bytes.
    let at = udp(5353, 53, 1232);
    let over = udp(5353, 53, 1233);
    assert_eq!(20 + at.l4_len(), 1260);
    assert_eq!(20 + over.l4_len(), 1261);
    let literal = |p: &Pkt, df: bool| Pkt {
        df,
        ..as_v4(p, true)
    };
    let big = tcp_data(40000, 80, 1428); // 20 + 32 + 1428 = 1480
    let cases = vec![
        Case {
            name: "total length 1260 -> DF=0, random ID".into(),
            input: at.v6(CLIENT6, SERVER6),
            want: Want::V4 {
                pkt: literal(&at, false),
                src: CLIENT4,
                dst: SERVER4,
            },
        },
        Case {
            name: "total length 1261 -> DF=1, ID 0".into(),
            input: over.v6(CLIENT6, SERVER6),
            want: Want::V4 {
                pkt: literal(&over, true),
                src: CLIENT4,
                dst: SERVER4,
            },
        },
        Case {
            name: "TCP, total length 1480 -> DF=1, ID 0".into(),
            input: big.v6(CLIENT6, SERVER6),
            want: Want::V4 {
                pkt: literal(&big, true),
                src: CLIENT4,
                dst: SERVER4,
            },
        },
        Case {
            name: "ICMP echo, 84 bytes -> DF=0".into(),
            input: echo(false, 56).v6(CLIENT6, SERVER6),
            want: Want::V4 {
                pkt: literal(&echo(false, 56), false),
                src: CLIENT4,
                dst: SERVER4,
            },
        },
    ];
    let x = Xlat::load("df", &base_config());
    let mut failures = x.check_all(&cases);

    // One more case: the DF=0 identification is not a constant. Sixteen runs of one packet
    // give sixteen equal IDs with probability 2^-240 if they are random.
    let input = udp(5353, 53, 40).v6(CLIENT6, SERVER6);
    let mut ids = Vec::new();
    for _ in 0..16 {
        let (action, out) = x.run(&input);
        if action != XDP_PASS || out.len() < 34 {
            failures.push(format!(
                "[df] random ID: {} with {} bytes out",
                action_name(action),
                out.len()
            ));
            break;
        }
        if out[20] & 0x40 != 0 {
            failures.push("[df] random ID: DF set on a 68-byte packet".into());
        }
        ids.push(u16::from_be_bytes([out[18], out[19]]));
    }
    ids.sort_unstable();
    ids.dedup();
    if ids.len() < 2 {
        failures.push(format!(
            "[df] random ID: 16 translations of one packet all got ID {ids:04x?}"
        ));
    }
    finish(cases.len() + 1, failures);
}

// ---------------------------------------------------------------------------------------------
// Translation, IPv4 to IPv6 (RFC 7915 section 4)
// ---------------------------------------------------------------------------------------------

#[test]
fn translates_4to6() {
    require_root();
    run_table("4to6", &base_config(), &cases_4to6());
}

fn cases_4to6() -> Vec<Case> {
    // RFC 7915 section 4.5: an unfragmented UDP datagram without checksum gets one computed,
    // since IPv6 requires it: the expected packet is the same datagram with its full IPv6
    // checksum, computed by etherparse.
    let zero_udp = {
        let with = Pkt {
            csum: Csum::Full,
            ..linux4(udp(7007, 40000, 333))
        };
        let mut c = s2c("UDP without checksum gets one computed (odd length)", &with);
        c.input = Pkt {
            csum: Csum::Zero,
            ..with.clone()
        }
        .v4(SERVER4, CLIENT4);
        c
    };
    let opts = |opts: &[u8], p: Pkt| Pkt {
        options: opts.to_vec(),
        ..linux4(p)
    };
    // RFC 791 options. Record route: type 7, length, pointer, slots.
    let nop_rr = [1, 7, 7, 4, 0, 0, 0, 0];
    let timestamp = [68, 12, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let mut max_rr = vec![7, 39, 4];
    max_rr.extend([0; 36]);
    max_rr.push(0); // end of options list: 40 bytes, IHL 15
    // A source route whose pointer ran past its length has been used up: no longer a route to
    // honour, so the packet is translated (RFC 7915 section 4.1 discards unexpired ones only).
    let lsrr_expired = [131, 7, 8, 192, 0, 2, 9, 0];
    let ssrr_expired = [137, 7, 8, 192, 0, 2, 9, 0];
    let small_echo = Pkt {
        trailer: vec![0; 18], // 14 + 20 + 8 = 42 bytes, padded to the 60-byte Ethernet minimum
        ..linux4(echo(false, 0))
    };
    let cases = vec![
        zero_udp,
        s2c("TCP SYN-ACK with options", &linux4(syn_ack())),
        s2c(
            "TCP data segment, 1000 bytes",
            &linux4(tcp_data(80, 40000, 1000)),
        ),
        s2c("UDP, 100 bytes", &linux4(udp(53, 5353, 100))),
        s2c(
            "ICMP echo request -> ICMPv6 echo request",
            &linux4(echo(false, 56)),
        ),
        s2c(
            "ICMP echo reply -> ICMPv6 echo reply",
            &linux4(echo(true, 56)),
        ),
        s2c(
            "TOS copied to traffic class",
            &Pkt {
                tos: 0x2a,
                ..linux4(udp(53, 5353, 10))
            }, // DSCP AF11, ECN ECT(0)
        ),
        s2c(
            "TTL 2 -> hop limit 2 (not decremented here)",
            &Pkt {
                hop: 2,
                ..linux4(udp(53, 5353, 10))
            },
        ),
        s2c(
            "other protocol (GRE) copied as is",
            &linux4(raw(47, pattern(36, 2))),
        ),
        // RFC 7915 section 4: no Fragment Header for an unfragmented packet, DF or not.
        s2c(
            "DF=0 unfragmented: no Fragment Header",
            &Pkt {
                df: false,
                id: 0xbeef,
                ..udp(53, 5353, 200)
            },
        ),
        s2c(
            "options NOP + record route are removed",
            &opts(&nop_rr, udp(53, 5353, 50)),
        ),
        s2c(
            "timestamp option is removed",
            &opts(&timestamp, tcp_data(80, 40000, 20)),
        ),
        s2c(
            "40 bytes of options (IHL 15) are removed",
            &opts(&max_rr, echo(false, 24)),
        ),
        s2c(
            "expired loose source route: translated",
            &opts(&lsrr_expired, udp(53, 5353, 10)),
        ),
        s2c(
            "expired strict source route: translated",
            &opts(&ssrr_expired, udp(53, 5353, 10)),
        ),
        // RFC 7757 section 3.3: the EAM table wins over pool6 for a source it covers.
        case_4to6(
            "source through EAM (198.51.100.5 -> 2001:db8:6::105)",
            &linux4(udp(53, 5353, 10)),
            (a4("198.51.100.5"), CLIENT4),
            (a6("2001:db8:6::105"), CLIENT6),
            true,
        ),
        case_4to6(
            "source embedded in pool6 (203.0.113.7 -> 64:ff9b::cb00:7107)",
            &linux4(tcp_data(443, 40000, 64)),
            (a4("203.0.113.7"), CLIENT4),
            (a6("64:ff9b::cb00:7107"), CLIENT6),
            true,
        ),
        // The kernel trims an IPv6 packet to its payload length, so padding may stay.
        s2c(
            "Ethernet padding after a short packet is carried along",
            &small_echo,
        ),
    ];
    cases
}

/// Whether `nat64_tc` leaves this frame to the translator link (`Handoff::SlowPath`): IPv6
/// extension headers and ICMPv6 errors; IPv4 options, fragments, ICMP errors and UDP without a
/// checksum.
fn slow_in_tc(f: &[u8]) -> bool {
    match u16::from_be_bytes([f[12], f[13]]) {
        0x86dd => {
            let nh = f[20];
            matches!(nh, 0 | 43 | 44 | 51 | 60 | 135 | 139 | 140 | 253 | 254)
                || (nh == 58 && f.get(54).is_some_and(|t| *t < 128))
        }
        0x0800 => {
            let ihl = (f[14] & 0x0f) as usize * 4;
            let frag = u16::from_be_bytes([f[20], f[21]]) & 0x3fff;
            let l4 = 14 + ihl;
            ihl > 20
                || frag != 0
                || (f[23] == 1 && f.get(l4).is_some_and(|t| *t != 0 && *t != 8))
                || (f[23] == 17 && f.get(l4 + 6..l4 + 8) == Some(&[0, 0][..]))
        }
        _ => false,
    }
}

fn input_dir(f: &[u8]) -> Dir {
    if u16::from_be_bytes([f[12], f[13]]) == 0x86dd {
        Dir::V6ToV4
    } else {
        Dir::V4ToV6
    }
}

/// The same corpus through `nat64_tc`, the fast path at the TC ingress hook: every packet it
/// translates comes out byte for byte as from `nat64_xdp`, with the same counters; the rest of
/// the fast path's work (extension headers, options, fragments, ICMP errors) is handed to the
/// translator link untouched.
#[test]
fn translates_both_ways_at_tc() {
    require_root();
    let mut x = Xlat::load("tc", &base_config());
    x.tc = true;
    let mut cases = cases_6to4();
    cases.extend(cases_4to6());
    let slow = cases.iter().filter(|c| slow_in_tc(&c.input)).count();
    let fast = cases.len() - slow;
    println!("{fast} cases on the TC fast path, {slow} left to the link");
    assert!(
        fast >= 20 && slow >= 5,
        "the corpus lost its spread: {fast} fast, {slow} slow"
    );
    finish(cases.len(), x.check_all(&cases));
}

/// A GSO aggregate at TC (two segments' worth of TCP as one packet, which XDP on a veth never
/// gets to see): its headers are translated, its length carried over whole, its payload
/// untouched; the kernel segments it after the hook.
#[test]
fn translates_a_gso_aggregate_at_tc() {
    require_root();
    let x = Xlat::load("tc-gso", &base_config());
    let mut failures = Vec::new();
    for (name, p, dir) in [
        ("6to4", tcp_data(40000, 80, 2800), Dir::V6ToV4),
        ("4to6", linux4(tcp_data(80, 40000, 2800)), Dir::V4ToV6),
    ] {
        // RFC 7915 section 5.1: more than 1260 bytes translated get DF=1, identification 0.
        let p4 = Pkt {
            df: true,
            id: 0,
            ..p.clone()
        };
        let (input, expected) = match dir {
            Dir::V6ToV4 => (p.v6(CLIENT6, SERVER6), p4.v4(CLIENT4, SERVER4)),
            Dir::V4ToV6 => (p.v4(SERVER4, CLIENT4), p.v6(SERVER6, CLIENT6)),
        };
        let before = x.stats();
        let (action, out) = x.run_tc(&input, 1400);
        let moved = counter_delta(&before, &x.stats());
        let mut errors = Vec::new();
        if action != XDP_PASS {
            errors.push(format!(
                "action {} (expected TC_ACT_OK)",
                action_name(action)
            ));
        }
        compare_frames(&expected, &out, &mut errors);
        check_counters(
            &moved,
            &[
                (Counter::Packets(dir, L4Proto::Tcp), 1),
                (
                    Counter::Bytes(dir),
                    (if dir == Dir::V6ToV4 { 20 } else { 40 } + p.l4_len()) as u64,
                ),
            ],
            &mut errors,
        );
        if !errors.is_empty() {
            failures.push(format!("[{name}] {}", errors.join("\n")));
        }
    }
    finish(2, failures);
}

/// The same corpus through `nat64_link`, the program on the far end of the translator link:
/// every packet is translated exactly as on the fast path, then sent back into the link
/// (`XDP_TX`) addressed to where it came from, with the hop the kernel took on the way in
/// given back (see `nat64-ebpf/src/link.rs`).
#[test]
fn translates_both_ways_on_the_translator_link() {
    require_root();
    let mut x = Xlat::load("link", &base_config());
    x.link = true;
    let mut cases = cases_6to4();
    cases.extend(cases_4to6());
    // On the link a hop limit of 1 is translated (to 2): the kernel checked it on the way in,
    // and checks it again on the way out.
    cases.push(c2s(
        "hop limit 1 is translated, not left to the kernel",
        &Pkt {
            hop: 1,
            ..udp(5353, 53, 20)
        },
    ));
    cases.push(s2c(
        "TTL 1 is translated, not left to the kernel",
        &Pkt {
            hop: 1,
            ..linux4(udp(53, 5353, 20))
        },
    ));
    finish(cases.len(), x.check_all(&cases));
}

/// The link's dispatcher tells the direction programs a frame is the link's through a word
/// pinned with the state (`LINKMARK`), not through a map of its own copy: a dispatcher left
/// attached by the last run (or by another build) and the programs a new start put into the
/// shared program array agree on it. Two copies of the dataplane over one pinned state: the
/// first copy's link dispatcher, calling the second copy's programs, has its translated frame
/// sent back into the link (XDP_TX); its fast path does not.
#[test]
fn a_link_dispatcher_of_another_copy_hands_its_frames_over_as_the_links() {
    require_root();
    let dir = std::env::temp_dir().join(format!("nat64-link-mark-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    nat64_tests::netns::run_ok(
        std::process::Command::new("mount")
            .args(["-t", "bpf", "bpf"])
            .arg(&dir),
    );
    let result = std::panic::catch_unwind(|| {
        let state = dir.join("state");
        std::fs::create_dir_all(&state).expect("state dir");
        let cfg = nat64_daemon::Config::parse(&base_config(), "two copies").expect("config");
        let first = nat64_daemon::Dataplane::load_keeping(&cfg, Some(&state), Vec::new())
            .expect("first copy");
        let second = nat64_daemon::Dataplane::load_keeping(&cfg, Some(&state), Vec::new())
            .expect("second copy");
        let input = udp(5353, 53, 20).v6(CLIENT6, SERVER6);
        use aya::programs::TestRun as _;
        let run = |dp: &nat64_daemon::Dataplane, name: &'static str| {
            let mut out = vec![0u8; input.len() + 256];
            dp.program(name)
                .expect("program")
                .test_run(aya::programs::TestRunOptions {
                    data_in: Some(&input),
                    data_out: Some(&mut out),
                    ..Default::default()
                })
                .expect("BPF_PROG_TEST_RUN")
                .return_value
        };
        use nat64_daemon::dataplane::{LINK_PROGRAM, XDP_PROGRAM};
        assert_eq!(
            run(&second, LINK_PROGRAM),
            XDP_TX,
            "its own link dispatcher"
        );
        assert_eq!(
            run(&first, LINK_PROGRAM),
            XDP_TX,
            "the other copy's link dispatcher"
        );
        assert_eq!(
            run(&first, XDP_PROGRAM),
            XDP_PASS,
            "the other copy's fast path"
        );
    });
    let _ = std::process::Command::new("umount").arg(&dir).output();
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

// ---------------------------------------------------------------------------------------------
// copy_tos = false (RFC 7915 sections 4.1 and 5.1: the configurable "ignore TOS" option)
// ---------------------------------------------------------------------------------------------

#[test]
fn copy_tos_off_writes_zero() {
    require_root();
    let cfg = format!("copy_tos = false\n{}", base_config());
    let cases = vec![
        case_6to4(
            "6to4: traffic class 0xb9 -> TOS 0",
            &Pkt {
                tos: 0xb9,
                ..tcp_data(40000, 80, 10)
            },
            (CLIENT6, SERVER6),
            (CLIENT4, SERVER4),
            false,
        ),
        case_4to6(
            "4to6: TOS 0x2a -> traffic class 0",
            &Pkt {
                tos: 0x2a,
                ..linux4(udp(53, 5353, 10))
            },
            (SERVER4, CLIENT4),
            (SERVER6, CLIENT6),
            false,
        ),
    ];
    run_table("copy_tos=false", &cfg, &cases);
}

/// RFC 7915 sections 5.1 and 4.1, each direction on its own: `tos` sets the IPv4 TOS of
/// IPv6-to-IPv4 packets to a configured value ("always set the IPv4 TOS Octet to a specified
/// value"), while `traffic_class = "copy"` keeps the IPv4 TOS in the other direction; and the
/// reverse pair.
#[test]
fn tos_and_traffic_class_are_set_per_direction() {
    require_root();
    let six = || Pkt {
        tos: 0xb9,
        ..tcp_data(40000, 80, 10)
    };
    let four = || Pkt {
        tos: 0x2a,
        ..linux4(udp(53, 5353, 10))
    };
    let set_tos = |p: &Pkt, tos: u8| Case {
        name: format!("6to4: traffic class 0xb9 -> TOS {tos:#x}"),
        input: p.v6(CLIENT6, SERVER6),
        want: Want::V4 {
            pkt: Pkt {
                tos,
                ..as_v4(p, false)
            },
            src: CLIENT4,
            dst: SERVER4,
        },
    };
    let cfg = format!("tos = 184\ntraffic_class = \"copy\"\n{}", base_config());
    let cases = vec![
        set_tos(&six(), 184),
        case_4to6(
            "4to6: TOS 0x2a copied to the traffic class",
            &four(),
            (SERVER4, CLIENT4),
            (SERVER6, CLIENT6),
            true,
        ),
    ];
    run_table("tos=184", &cfg, &cases);
    let cfg = format!(
        "tos = \"copy\"\ntraffic_class = \"zero\"\n{}",
        base_config()
    );
    let cases = vec![
        case_6to4(
            "6to4: traffic class 0xb9 copied to the TOS",
            &six(),
            (CLIENT6, SERVER6),
            (CLIENT4, SERVER4),
            true,
        ),
        case_4to6(
            "4to6: TOS 0x2a -> traffic class 0",
            &four(),
            (SERVER4, CLIENT4),
            (SERVER6, CLIENT6),
            false,
        ),
    ];
    run_table("traffic_class=zero", &cfg, &cases);
}

// ---------------------------------------------------------------------------------------------
// Every RFC 6052 prefix length, with the examples of RFC 6052 section 2.4
// ---------------------------------------------------------------------------------------------

/// RFC 6052 section 2.4: 192.0.2.33 embedded under each prefix, verbatim.
const RFC6052_EXAMPLES: [(&str, u8, &str); 7] = [
    ("2001:db8::", 32, "2001:db8:c000:221::"),
    ("2001:db8:100::", 40, "2001:db8:1c0:2:21::"),
    ("2001:db8:122::", 48, "2001:db8:122:c000:2:2100::"),
    ("2001:db8:122:300::", 56, "2001:db8:122:3c0:0:221::"),
    ("2001:db8:122:344::", 64, "2001:db8:122:344:c0:2:2100::"),
    ("2001:db8:122:344::", 96, "2001:db8:122:344::192.0.2.33"),
    ("64:ff9b::", 96, "64:ff9b::192.0.2.33"),
];

/// For each row, a translator with that pool6 and an EAM entry for the client: a packet to the
/// example address reaches 192.0.2.33, and the reply from 192.0.2.33 comes back from exactly
/// the example address. Each configuration gets its own dataplane.
#[test]
fn rfc6052_prefix_lengths() {
    require_root();
    let far4 = a4("192.0.2.33");
    let mut failures = Vec::new();
    let mut total = 0;
    for (prefix, len, example) in RFC6052_EXAMPLES {
        let example6 = a6(example);
        // The configuration refuses an EAM entry inside pool6, and 2001:db8::/32 covers the
        // lab client 2001:db8:6::/120; under that prefix the client lives in 3fff::/20, the
        // other documentation prefix (RFC 9637).
        let (client6, eam6) = if len == 32 {
            (a6("3fff:6::102"), "3fff:6::100/120")
        } else {
            (CLIENT6, "2001:db8:6::100/120")
        };
        let cfg = format!(
            "pool6 = \"{prefix}/{len}\"\n[[eam]]\nipv6 = \"{eam6}\"\nipv4 = \"198.51.100.0/24\"\n"
        );
        let mut cases = vec![
            case_6to4(
                &format!("/{len}: to {example} -> 192.0.2.33"),
                &udp(40001, 53, 32),
                (client6, example6),
                (CLIENT4, far4),
                true,
            ),
            case_4to6(
                &format!("/{len}: reply from 192.0.2.33 comes from {example}"),
                &linux4(udp(53, 40001, 48)),
                (far4, CLIENT4),
                (example6, client6),
                true,
            ),
        ];
        if len == 40 {
            // The u-octet (bits 64-71) and the suffix are ignored on extraction: addr.rs
            // follows the reading of RFC 6052 section 2.2 that receivers ignore them.
            cases.push(case_6to4(
                "/40: u-octet and suffix set are ignored (2001:db8:1c0:2:ff21::1)",
                &tcp_data(40000, 80, 8),
                (client6, a6("2001:db8:1c0:2:ff21::1")),
                (CLIENT4, far4),
                true,
            ));
        }
        total += cases.len();
        let x = Xlat::load(&format!("pool6 {prefix}/{len}"), &cfg);
        failures.extend(x.check_all(&cases));
    }
    finish(total, failures);
}

// ---------------------------------------------------------------------------------------------
// EAM only (pool6 = "off")
// ---------------------------------------------------------------------------------------------

#[test]
fn eam_only() {
    require_root();
    // The server gets an EAM entry too: 2001:db8:4::200/120 <-> 192.0.2.0/24.
    let cfg = format!(
        "pool6 = \"off\"\n{EAM_CLIENT}\n[[eam]]\nipv6 = \"2001:db8:4::200/120\"\nipv4 = \"192.0.2.0/24\"\n"
    );
    let server6 = a6("2001:db8:4::202");
    let cases = vec![
        case_6to4(
            "6to4 between two EAM entries",
            &tcp_data(40000, 80, 100),
            (CLIENT6, server6),
            (CLIENT4, SERVER4),
            true,
        ),
        case_4to6(
            "4to6 between two EAM entries",
            &linux4(tcp_data(80, 40000, 100)),
            (SERVER4, CLIENT4),
            (server6, CLIENT6),
            true,
        ),
        case_pass(
            "6to4 to 64:ff9b::192.0.2.2 is not ours without pool6",
            udp(5353, 53, 10).v6(CLIENT6, SERVER6),
        ),
        case_drop(
            "4to6 from an unmapped source (203.0.113.9): nothing to embed it in",
            linux4(udp(53, 5353, 10)).v4(a4("203.0.113.9"), CLIENT4),
            Dir::V4ToV6,
            DropReason::SourceUntranslatable,
        ),
        case_drop(
            "6to4 from a pool6-style source (64:ff9b::203.0.113.9)",
            udp(5353, 53, 10).v6(a6("64:ff9b::cb00:7109"), server6),
            Dir::V6ToV4,
            DropReason::SourceUntranslatable,
        ),
    ];
    run_table("eam-only", &cfg, &cases);
}

/// `udp_zero_checksum = "drop"`: RFC 7915 section 4.5 lets a translator drop an unfragmented
/// UDP datagram without a checksum rather than compute one (Jool's default); counted. With a
/// checksum it goes through as ever.
#[test]
fn udp_zero_checksum_drop() {
    require_root();
    let cfg = format!("udp_zero_checksum = \"drop\"\n{}", base_config());
    let with = Pkt {
        csum: Csum::Full,
        ..linux4(udp(7007, 40000, 333))
    };
    let cases = vec![
        case_drop(
            "UDP without checksum, unfragmented",
            Pkt {
                csum: Csum::Zero,
                ..with.clone()
            }
            .v4(SERVER4, CLIENT4),
            Dir::V4ToV6,
            DropReason::UdpZeroChecksum,
        ),
        s2c("UDP with a checksum", &with),
    ];
    run_table("udp_zero_checksum drop", &cfg, &cases);
}

/// `pool6_ipv4`: the IPv4 addresses of 203.0.113.0/24 stand for the IPv6 hosts they embed
/// under pool6 (RFC 6052; RFC 7915 section 4.1, the stateless IVI case), so an IPv4 packet to
/// 203.0.113.9 goes to 64:ff9b::203.0.113.9, and that host's packets leave from 203.0.113.9.
/// An EAM entry inside the prefix wins (RFC 7757 section 3.3), and an IPv4 destination
/// outside every listed prefix stays the kernel's.
#[test]
fn pool6_ipv4_destinations() {
    require_root();
    let cfg = format!(
        "pool6_ipv4 = [\"203.0.113.0/24\"]\n{}\n[[eam]]\nipv6 = \"2001:db8:4::7/128\"\nipv4 = \"203.0.113.7/32\"\n",
        base_config()
    );
    let ivi4 = a4("203.0.113.9");
    let ivi6 = a6("64:ff9b::cb00:7109");
    let cases = vec![
        case_4to6(
            "4to6 to 203.0.113.9: pool6 + the address",
            &linux4(tcp_data(80, 40000, 100)),
            (SERVER4, ivi4),
            (SERVER6, ivi6),
            true,
        ),
        case_4to6(
            "4to6 udp to 203.0.113.9",
            &linux4(udp(53, 5353, 30)),
            (SERVER4, ivi4),
            (SERVER6, ivi6),
            true,
        ),
        case_6to4(
            "6to4 from 64:ff9b::203.0.113.9 back",
            &tcp_data(40000, 80, 100),
            (ivi6, SERVER6),
            (ivi4, SERVER4),
            true,
        ),
        case_4to6(
            "4to6 to 203.0.113.7: the EAM entry inside the prefix wins",
            &linux4(udp(53, 5353, 30)),
            (SERVER4, a4("203.0.113.7")),
            (SERVER6, a6("2001:db8:4::7")),
            true,
        ),
        case_pass(
            "4to6 to 198.18.0.1, in no listed prefix: not ours",
            linux4(udp(53, 5353, 10)).v4(SERVER4, a4("198.18.0.1")),
        ),
    ];
    run_table("pool6_ipv4", &cfg, &cases);
}

// ---------------------------------------------------------------------------------------------
// Drops, IPv6 to IPv4
// ---------------------------------------------------------------------------------------------

// DropReason::HeadroomExhausted is not tested in either direction: it needs
// bpf_xdp_adjust_head() to fail, and BPF_PROG_TEST_RUN always gives the frame
// XDP_PACKET_HEADROOM (256 bytes) in front, while the program moves the head by at most 20
// bytes (IPv4 without options to IPv6). No crafted frame can reach it. Nor can the 6to4
// BadHeader (an IPv6 payload length whose IPv4 total length would pass 65535): the frame must
// hold the whole payload first, and BPF_PROG_TEST_RUN takes frames of about a page.

#[test]
fn drops_6to4() {
    require_root();
    let d = |name: &str, input: Vec<u8>, r: DropReason| case_drop(name, input, Dir::V6ToV4, r);
    let u = || udp(5353, 53, 20);
    let mut cases = vec![
        // RFC 7915 sections 4.1/5.1: the kernel answers Time Exceeded for it.
        case_expired(
            "hop limit 1",
            Pkt { hop: 1, ..u() }.v6(CLIENT6, SERVER6),
            Dir::V6ToV4,
        ),
        // RFC 7915 sections 4.1/5.1: the kernel answers Time Exceeded for it.
        case_expired(
            "hop limit 0",
            Pkt { hop: 0, ..u() }.v6(CLIENT6, SERVER6),
            Dir::V6ToV4,
        ),
        d(
            "source maps to nothing (2001:db8:99::1)",
            u().v6(a6("2001:db8:99::1"), SERVER6),
            DropReason::SourceUntranslatable,
        ),
        d(
            "destination 127.0.0.1 (loopback)",
            u().v6(CLIENT6, a6("64:ff9b::7f00:1")),
            DropReason::MartianAddress,
        ),
        d(
            "destination 0.0.0.1 (this network)",
            u().v6(CLIENT6, a6("64:ff9b::1")),
            DropReason::MartianAddress,
        ),
        d(
            "destination 240.0.0.1 (class E)",
            u().v6(CLIENT6, a6("64:ff9b::f000:1")),
            DropReason::MartianAddress,
        ),
        d(
            "destination 255.255.255.255 (limited broadcast)",
            u().v6(CLIENT6, a6("64:ff9b::ffff:ffff")),
            DropReason::MartianAddress,
        ),
        d(
            "destination 233.252.0.1 (multicast, through EAM)",
            u().v6(CLIENT6, a6("2001:db8:e::1")),
            DropReason::MartianAddress,
        ),
        d(
            "source 127.0.0.1 (through pool6)",
            u().v6(a6("64:ff9b::7f00:1"), SERVER6),
            DropReason::MartianAddress,
        ),
        d(
            "payload length beyond the frame",
            {
                let mut f = udp(5353, 53, 40).v6(CLIENT6, SERVER6);
                f.truncate(f.len() - 4);
                f
            },
            DropReason::Truncated,
        ),
        d(
            "TCP header cut short (10 bytes)",
            raw(6, pattern(10, 0)).v6(CLIENT6, SERVER6),
            DropReason::Truncated,
        ),
        d(
            "ICMPv6 header cut short (2 bytes)",
            raw(58, vec![128, 0]).v6(CLIENT6, SERVER6),
            DropReason::Truncated,
        ),
        // The same in a frame padded past the packet: the padding is not the header.
        d(
            "TCP header cut short (10 bytes), the frame padded",
            padded(raw(6, pattern(10, 0)).v6(CLIENT6, SERVER6)),
            DropReason::Truncated,
        ),
        d(
            "ICMPv6 header cut short (2 bytes), the frame padded",
            padded(raw(58, vec![128, 0]).v6(CLIENT6, SERVER6)),
            DropReason::Truncated,
        ),
        // RFC 7915 section 5.2: ND and MLD are single-hop, never translated.
        d(
            "ICMPv6 neighbour solicitation (135)",
            icmp(135, 0).v6(CLIENT6, SERVER6),
            DropReason::IcmpUntranslatable,
        ),
        d(
            "ICMPv6 multicast listener query (130)",
            icmp(130, 0).v6(CLIENT6, SERVER6),
            DropReason::IcmpUntranslatable,
        ),
        // An error must quote the packet it is about (RFC 7915 section 5.3); this one quotes
        // nothing, so there is nothing to translate.
        d(
            "ICMPv6 destination unreachable (1) quoting no packet",
            icmp(1, 4).v6(CLIENT6, SERVER6),
            DropReason::InnerUntranslatable,
        ),
    ];
    // Every extension header number the dataplane does not translate: AH (it covers the
    // addresses that translation changes), mobility, HIP, shim6, and the two experimental
    // values. Hop-by-hop, routing, fragment and destination options are translated:
    // tests/tests/extension_headers.rs. The header itself is 8 bytes announcing UDP next.
    for nh in [51u8, 135, 139, 140, 253, 254] {
        let mut ext = vec![17, 0, 0, 0, 0, 0, 0, 0];
        ext.extend(pattern(16, nh));
        cases.push(d(
            &format!("extension header {nh}"),
            raw(nh, ext).v6(CLIENT6, SERVER6),
            DropReason::ExtensionHeader,
        ));
    }
    run_table("drops 6to4", &drop_config(), &cases);
}

// ---------------------------------------------------------------------------------------------
// Drops, IPv4 to IPv6
// ---------------------------------------------------------------------------------------------

/// RFC 7757 section 3.2: an EAM entry whose IPv6 suffix is longer than its IPv4 one puts the
/// IPv4 suffix right after the IPv6 prefix (2001:db8:1c6:3364::/72 <-> 203.0.113.0/24: the
/// host byte is the IPv6 address's tenth byte); bits after it are zero going to IPv6 and
/// ignored coming from it. An entry may also lie inside pool6 (section 3.3: it is looked up
/// first).
#[test]
fn eam_with_a_longer_ipv6_suffix_and_inside_pool6() {
    require_root();
    let u = || udp(5353, 53, 20);
    let u4 = || linux4(udp(53, 5353, 20));
    let toml = format!(
        "{}\n[[eam]]\nipv6 = \"2001:db8:1c6:3364::/72\"\nipv4 = \"203.0.113.0/24\"\n",
        base_config()
    );
    let cases = vec![
        case_6to4(
            "from 2001:db8:1c6:3364:5:: (203.0.113.5)",
            &u(),
            (a6("2001:db8:1c6:3364:5::"), SERVER6),
            (a4("203.0.113.5"), SERVER4),
            true,
        ),
        case_6to4(
            "from 2001:db8:1c6:3364:5:ff:0:9: bits past the IPv4 suffix are not mapped",
            &u(),
            (a6("2001:db8:1c6:3364:5:ff:0:9"), SERVER6),
            (a4("203.0.113.5"), SERVER4),
            true,
        ),
        case_4to6(
            "to 203.0.113.5",
            &u4(),
            (SERVER4, a4("203.0.113.5")),
            (SERVER6, a6("2001:db8:1c6:3364:5::")),
            true,
        ),
    ];
    run_table("eam longer ipv6 suffix", &toml, &cases);
    let toml = format!(
        "{}\n[[eam]]\nipv6 = \"64:ff9b::c633:6400/120\"\nipv4 = \"203.0.113.0/24\"\n",
        base_config()
    );
    let cases = vec![case_6to4(
        "to 64:ff9b::c633:6407, an EAM entry inside pool6: 203.0.113.7, not 198.51.100.7",
        &u(),
        (CLIENT6, a6("64:ff9b::c633:6407")),
        (CLIENT4, a4("203.0.113.7")),
        true,
    )];
    run_table("eam inside pool6", &toml, &cases);
}

/// This node's own IPv4 address inside an EAM prefix stays the node's: nothing to it, nor to
/// its IPv6 counterpart, is translated (Jool's graybox `6791v46t` runs with such a setup), and
/// the rest of the prefix maps as usual. The daemon hands the dataplane the node's addresses;
/// here 203.0.113.1 stands for one.
#[test]
fn the_nodes_own_address_inside_an_eam_prefix_is_not_translated() {
    require_root();
    let u = || udp(5353, 53, 20);
    let u4 = || linux4(udp(53, 5353, 20));
    let toml = format!(
        "{}\n[[eam]]\nipv6 = \"2001:db8:1c6:3364::/72\"\nipv4 = \"203.0.113.0/24\"\n",
        base_config()
    );
    let cases = vec![
        case_pass(
            "to 203.0.113.1, the node's",
            u4().v4(SERVER4, a4("203.0.113.1")),
        ),
        case_pass(
            "to 2001:db8:1c6:3364:1::, its IPv6 counterpart",
            u().v6(CLIENT6, a6("2001:db8:1c6:3364:1::")),
        ),
        case_4to6(
            "to 203.0.113.5, an IPv6 host's",
            &u4(),
            (SERVER4, a4("203.0.113.5")),
            (SERVER6, a6("2001:db8:1c6:3364:5::")),
            true,
        ),
    ];
    let mut x = Xlat::load("eam holding the node's address", &toml);
    x.loaded
        .dp
        .keep_own_addresses(vec![("d0".into(), a4("203.0.113.1"))]);
    let cfg = x.loaded.cfg.clone();
    x.loaded.dp.apply(&cfg).expect("apply");
    finish(cases.len(), x.check_all(&cases));
}

/// RFC 6052 section 3.1: the Well-Known Prefix "MUST NOT be used to represent non-global IPv4
/// addresses" and translators "MUST drop these packets": under 64:ff9b::/96 a private
/// destination or source is refused (counted), while an EAM entry may still give a private
/// address to an IPv6 host, and a network-specific prefix carries any address. (The
/// documentation ranges the other tests use are left to labs: see
/// `nat64_common::addr::NON_GLOBAL_V4`.)
#[test]
fn non_global_addresses_under_the_well_known_prefix() {
    require_root();
    let u = || udp(5353, 53, 20);
    let u4 = || linux4(udp(53, 5353, 20));
    let private_eam = "[[eam]]\nipv6 = \"2001:db8:a::/120\"\nipv4 = \"10.0.0.0/24\"\n";
    let wkp = format!("{}\n{private_eam}", base_config());
    let cases = vec![
        case_drop(
            "to 10.1.2.3 under the WKP",
            u().v6(CLIENT6, a6("64:ff9b::a01:203")),
            Dir::V6ToV4,
            DropReason::MartianAddress,
        ),
        case_drop(
            "to 192.168.1.1 under the WKP",
            u().v6(CLIENT6, a6("64:ff9b::c0a8:101")),
            Dir::V6ToV4,
            DropReason::MartianAddress,
        ),
        case_drop(
            "to 100.64.0.1 (shared address space) under the WKP",
            u().v6(CLIENT6, a6("64:ff9b::6440:1")),
            Dir::V6ToV4,
            DropReason::MartianAddress,
        ),
        case_drop(
            "from 172.16.0.1 under the WKP",
            u().v6(a6("64:ff9b::ac10:1"), SERVER6),
            Dir::V6ToV4,
            DropReason::MartianAddress,
        ),
        case_drop(
            "IPv4 from 10.1.2.3: no address under the WKP",
            u4().v4(a4("10.1.2.3"), CLIENT4),
            Dir::V4ToV6,
            DropReason::SourceUntranslatable,
        ),
        case_6to4(
            "from a host with a private EAM address",
            &u(),
            (a6("2001:db8:a::5"), SERVER6),
            (a4("10.0.0.5"), SERVER4),
            true,
        ),
        case_4to6(
            "to a host with a private EAM address",
            &u4(),
            (SERVER4, a4("10.0.0.5")),
            (SERVER6, a6("2001:db8:a::5")),
            true,
        ),
    ];
    run_table("wkp non-global", &wkp, &cases);
    // A network-specific prefix carries them.
    let nsp = format!("pool6 = \"2001:db8:64::/96\"\n{EAM_CLIENT}");
    let cases = vec![
        case_6to4(
            "to 10.1.2.3 under 2001:db8:64::/96",
            &u(),
            (CLIENT6, a6("2001:db8:64::a01:203")),
            (CLIENT4, a4("10.1.2.3")),
            true,
        ),
        case_4to6(
            "from 10.1.2.3 under 2001:db8:64::/96",
            &u4(),
            (a4("10.1.2.3"), CLIENT4),
            (a6("2001:db8:64::a01:203"), CLIENT6),
            true,
        ),
    ];
    run_table("nsp non-global", &nsp, &cases);
}

#[test]
fn drops_4to6() {
    require_root();
    let d = |name: &str, input: Vec<u8>, r: DropReason| case_drop(name, input, Dir::V4ToV6, r);
    let u = || linux4(udp(53, 5353, 20));
    let good = || u().v4(SERVER4, CLIENT4);
    let patched = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut frame = good();
        f(&mut frame);
        frame
    };
    let with_options = |opts: &[u8]| {
        Pkt {
            options: opts.to_vec(),
            ..u()
        }
        .v4(SERVER4, CLIENT4)
    };
    let cases = vec![
        d("IHL 4", patched(&|f| f[14] = 0x44), DropReason::BadHeader),
        d(
            "total length 16, below the header",
            patched(&|f| f[16..18].copy_from_slice(&16u16.to_be_bytes())),
            DropReason::BadHeader,
        ),
        d(
            "total length beyond the frame",
            patched(&|f| {
                f.truncate(f.len() - 4);
            }),
            DropReason::Truncated,
        ),
        d(
            "wrong header checksum",
            patched(&|f| f[24] ^= 0x5a),
            DropReason::BadHeader,
        ),
        // RFC 7915 sections 4.1/5.1: the kernel answers Time Exceeded for it.
        case_expired(
            "TTL 1",
            Pkt { hop: 1, ..u() }.v4(SERVER4, CLIENT4),
            Dir::V4ToV6,
        ),
        // RFC 7915 sections 4.1/5.1: the kernel answers Time Exceeded for it.
        case_expired(
            "TTL 0",
            Pkt { hop: 0, ..u() }.v4(SERVER4, CLIENT4),
            Dir::V4ToV6,
        ),
        // RFC 7915 section 4.1: an unexpired source route means discard.
        d(
            "unexpired loose source route",
            with_options(&[131, 7, 4, 192, 0, 2, 9, 0]),
            DropReason::SourceRoute,
        ),
        d(
            "unexpired strict source route after a NOP",
            with_options(&[1, 137, 7, 4, 192, 0, 2, 9]),
            DropReason::SourceRoute,
        ),
        d(
            "option with length 1",
            with_options(&[7, 1, 0, 0]),
            DropReason::BadHeader,
        ),
        d(
            "source 127.0.0.1",
            u().v4(a4("127.0.0.1"), CLIENT4),
            DropReason::MartianAddress,
        ),
        d(
            "source 0.1.2.3",
            u().v4(a4("0.1.2.3"), CLIENT4),
            DropReason::MartianAddress,
        ),
        d(
            "source 224.0.0.5 (multicast)",
            u().v4(a4("224.0.0.5"), CLIENT4),
            DropReason::MartianAddress,
        ),
        d(
            "destination 233.252.0.1 (multicast, through EAM)",
            u().v4(SERVER4, a4("233.252.0.1")),
            DropReason::MartianAddress,
        ),
        // RFC 7915 section 4.5: a fragmented UDP datagram without checksum cannot have one
        // computed (the rest is out of reach) and is dropped.
        d(
            "UDP without checksum, first fragment",
            Pkt {
                csum: Csum::Zero,
                df: false,
                mf: true,
                ..u()
            }
            .v4(SERVER4, CLIENT4),
            DropReason::UdpZeroChecksum,
        ),
        d(
            "TCP header cut short (10 bytes)",
            linux4(raw(6, pattern(10, 0))).v4(SERVER4, CLIENT4),
            DropReason::Truncated,
        ),
        d(
            "ICMP header cut short (2 bytes)",
            linux4(raw(1, vec![8, 0])).v4(SERVER4, CLIENT4),
            DropReason::Truncated,
        ),
        // The same in a frame padded past the packet (Ethernet's 60-byte minimum, or more):
        // the padding is not the transport header.
        d(
            "TCP header cut short (10 bytes), the frame padded",
            padded(linux4(raw(6, pattern(10, 0))).v4(SERVER4, CLIENT4)),
            DropReason::Truncated,
        ),
        d(
            "UDP header cut short (4 bytes), the frame padded",
            padded(linux4(raw(17, vec![0, 53, 0, 53])).v4(SERVER4, CLIENT4)),
            DropReason::Truncated,
        ),
        d(
            "ICMP header cut short (2 bytes), the frame padded",
            padded(linux4(raw(1, vec![8, 0])).v4(SERVER4, CLIENT4)),
            DropReason::Truncated,
        ),
        // An error must quote the packet it is about (RFC 7915 section 4.3); this one quotes
        // nothing. Timestamp is one of the types section 4.2 says to drop.
        d(
            "ICMP destination unreachable (3) quoting no packet",
            linux4(icmp(3, 1)).v4(SERVER4, CLIENT4),
            DropReason::InnerUntranslatable,
        ),
        d(
            "ICMP timestamp request (13)",
            linux4(icmp(13, 0)).v4(SERVER4, CLIENT4),
            DropReason::IcmpUntranslatable,
        ),
    ];
    run_table("drops 4to6", &drop_config(), &cases);
}

// ---------------------------------------------------------------------------------------------
// Traffic that is not ours passes untouched and uncounted
// ---------------------------------------------------------------------------------------------

#[test]
fn passes_what_is_not_ours() {
    require_root();
    let arp = {
        let mut f = eth(ETH_P_ARP);
        // Request: Ethernet/IPv4, who has 192.0.2.1, tell 192.0.2.2.
        f.extend([0, 1, 8, 0, 6, 4, 0, 1]);
        f.extend(MAC_SRC);
        f.extend(SERVER4.octets());
        f.extend([0; 6]);
        f.extend([192, 0, 2, 1]);
        f
    };
    let vlan = {
        // An 802.1Q tag in front of an IPv6 packet that would be ours untagged.
        let inner = udp(5353, 53, 20).v6(CLIENT6, SERVER6);
        let mut f = eth(ETH_P_8021Q);
        f.extend([0x00, 0x64]); // VLAN 100
        f.extend(ETH_P_IPV6.to_be_bytes());
        f.extend_from_slice(&inner[14..]);
        f
    };
    let short = |ether_type: u16, n: usize| {
        let mut f = eth(ether_type);
        f.extend(pattern(n, if ether_type == ETH_P_IP { 0x45 } else { 0x60 }));
        if let Some(b) = f.get_mut(14) {
            *b = if ether_type == ETH_P_IP { 0x45 } else { 0x60 };
        }
        f
    };
    let cases = vec![
        case_pass(
            "IPv6 to an unmapped address (2001:db8:1::1)",
            udp(5353, 53, 20).v6(CLIENT6, a6("2001:db8:1::1")),
        ),
        case_pass(
            "IPv6 to the client's /64 outside the EAM entry (2001:db8:6::1)",
            echo(false, 16).v6(a6("2001:db8:6::2"), a6("2001:db8:6::1")),
        ),
        case_pass(
            "IPv6 to 64:ff9b:1::192.0.2.2 (RFC 8215 local-use prefix, not pool6)",
            udp(5353, 53, 20).v6(CLIENT6, a6("64:ff9b:1::c000:202")),
        ),
        case_pass(
            "ICMPv6 neighbour solicitation to a solicited-node address",
            Pkt {
                hop: 255,
                ..icmp(135, 0)
            }
            .v6(CLIENT6, a6("ff02::1:ff00:1")),
        ),
        case_pass(
            "IPv6 hop limit 1 to an unmapped address (not ours, so not a drop)",
            Pkt {
                hop: 1,
                ..udp(5353, 53, 20)
            }
            .v6(CLIENT6, a6("2001:db8:1::1")),
        ),
        case_pass(
            "IPv4 to the server (192.0.2.2), not an EAM destination",
            linux4(udp(5353, 53, 20)).v4(CLIENT4, SERVER4),
        ),
        case_pass(
            "IPv4 to 203.0.113.7 (pool6 never makes an IPv4 destination ours)",
            linux4(tcp_data(40000, 443, 20)).v4(SERVER4, a4("203.0.113.7")),
        ),
        case_pass("ARP request", arp),
        case_pass("802.1Q-tagged IPv6 to a mapped destination", vlan),
        case_pass(
            "IPv6 EtherType, 20 bytes: too short for an IPv6 header",
            short(ETH_P_IPV6, 20),
        ),
        case_pass(
            "IPv4 EtherType, 10 bytes: too short for an IPv4 header",
            short(ETH_P_IP, 10),
        ),
        case_pass("IPv6 EtherType, Ethernet header only", eth(ETH_P_IPV6)),
        case_pass(
            "IPv6 EtherType carrying an IPv4 packet to an EAM address",
            {
                let mut f = linux4(udp(53, 5353, 20)).v4(SERVER4, CLIENT4);
                f[12..14].copy_from_slice(&ETH_P_IPV6.to_be_bytes());
                f
            },
        ),
    ];
    run_table("pass", &base_config(), &cases);
}

// ---------------------------------------------------------------------------------------------
// Byte counters, with literal numbers
// ---------------------------------------------------------------------------------------------

#[test]
fn byte_counters_count_ip_lengths() {
    require_root();
    let x = Xlat::load("bytes", &base_config());
    // 6to4: UDP with 100 bytes of data is a 128-byte IPv4 packet.
    let (a, _) = x.run(&udp(5353, 53, 100).v6(CLIENT6, SERVER6));
    assert_eq!(a, XDP_PASS, "6to4 UDP");
    // 4to6: UDP with 100 bytes of data and 8 bytes of IPv4 options is a 148-byte IPv6 packet
    // (the options are gone).
    let p = Pkt {
        options: vec![1, 7, 7, 4, 0, 0, 0, 0],
        ..linux4(udp(53, 5353, 100))
    };
    let (a, _) = x.run(&p.v4(SERVER4, CLIENT4));
    assert_eq!(a, XDP_PASS, "4to6 UDP");
    // And one of each that is not counted: a pass and a drop.
    x.run(&udp(5353, 53, 100).v6(CLIENT6, a6("2001:db8:1::1")));
    x.run(
        &Pkt {
            hop: 1,
            ..udp(5353, 53, 100)
        }
        .v6(CLIENT6, SERVER6),
    );
    let s = x.stats();
    let got: Vec<(Counter, u64)> = all_counters()
        .filter(|c| s.get(*c) != 0)
        .map(|c| (c, s.get(c)))
        .collect();
    let want = vec![
        (Counter::Packets(Dir::V6ToV4, L4Proto::Udp), 1),
        (Counter::Bytes(Dir::V6ToV4), 128),
        (
            Counter::Dropped(Dir::V6ToV4, DropReason::HopLimitExceeded),
            1,
        ),
        (Counter::Packets(Dir::V4ToV6, L4Proto::Udp), 1),
        (Counter::Bytes(Dir::V4ToV6), 148),
    ];
    let mut errors = Vec::new();
    check_counters(&got, &want, &mut errors);
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    assert_eq!(s.translated(Dir::V6ToV4), 1);
    assert_eq!(s.translated(Dir::V4ToV6), 1);
    assert_eq!(s.dropped(Dir::V6ToV4), 1);
    assert_eq!(s.dropped(Dir::V4ToV6), 0);
}

// ---------------------------------------------------------------------------------------------
// Partial (CHECKSUM_PARTIAL) transport checksums
// ---------------------------------------------------------------------------------------------

/// A 6to4 case whose input carries `csum` and whose expected output carries `out`.
fn partial_6to4(name: &str, p: Pkt, csum: Csum, out: Csum) -> Case {
    let input = Pkt { csum, ..p.clone() };
    Case {
        name: name.into(),
        input: input.v6(CLIENT6, SERVER6),
        want: Want::V4 {
            pkt: Pkt {
                csum: out,
                ..as_v4(&p, true)
            },
            src: CLIENT4,
            dst: SERVER4,
        },
    }
}

fn partial_4to6(name: &str, p: Pkt, csum: Csum, out: Csum) -> Case {
    let input = Pkt { csum, ..p.clone() };
    Case {
        name: name.into(),
        input: input.v4(SERVER4, CLIENT4),
        want: Want::V6 {
            pkt: Pkt {
                csum: out,
                ..as_v6(&p, true)
            },
            src: SERVER6,
            dst: CLIENT6,
        },
    }
}

/// On an interface flagged for partial checksums, a field holding the pseudo-header sum is a
/// partial checksum and must leave as the pseudo-header sum of the new addresses; a full
/// checksum on the same interface is still updated as a full one.
#[test]
fn partial_checksums_with_flag() {
    require_root();
    let mut x = Xlat::load("partial on", &base_config());
    let settings = nat64_daemon::InterfaceSettings {
        partial_checksums: true,
        ..Default::default()
    };
    x.dp.set_interface(1, &settings)
        .unwrap_or_else(|e| panic!("set_interface(1, partial): {e:?}"));
    let cases = vec![
        partial_6to4(
            "6to4 TCP, partial stays partial",
            tcp_data(40000, 80, 300),
            Csum::Partial,
            Csum::Partial,
        ),
        partial_6to4(
            "6to4 UDP, partial stays partial",
            udp(5353, 53, 77),
            Csum::Partial,
            Csum::Partial,
        ),
        partial_4to6(
            "4to6 TCP, partial stays partial",
            linux4(tcp_data(80, 40000, 300)),
            Csum::Partial,
            Csum::Partial,
        ),
        partial_4to6(
            "4to6 UDP, partial stays partial",
            linux4(udp(53, 5353, 77)),
            Csum::Partial,
            Csum::Partial,
        ),
        partial_6to4(
            "6to4 TCP, full checksum stays full",
            tcp_data(40000, 80, 300),
            Csum::Full,
            Csum::Full,
        ),
        partial_4to6(
            "4to6 UDP, full checksum stays full",
            linux4(udp(53, 5353, 77)),
            Csum::Full,
            Csum::Full,
        ),
    ];
    finish(cases.len(), x.check_all(&cases));
}

/// Without the flag, the very same partial field is taken for a (wrong) full checksum and
/// updated as one (RFC 1624): the output is exactly as wrong as the input was.
#[test]
fn partial_checksums_without_flag() {
    require_root();
    let x = Xlat::load("partial off", &base_config());
    let v6 = Pseudo::V6 {
        src: CLIENT6.octets(),
        dst: SERVER6.octets(),
    };
    let v4 = Pseudo::V4 {
        src: CLIENT4.octets(),
        dst: SERVER4.octets(),
    };
    let (s6, s4) = (
        Pseudo::V6 {
            src: SERVER6.octets(),
            dst: CLIENT6.octets(),
        },
        Pseudo::V4 {
            src: SERVER4.octets(),
            dst: CLIENT4.octets(),
        },
    );
    // The input field is the partial sum of the input pseudo-header `from`; the output is what
    // an RFC 1624 update of it for `to` gives, computed from the true checksums.
    let carried = |p: &Pkt, from: &Pseudo, to: &Pseudo, proto: u8| {
        let field = partial_csum(from, p.l4_len(), proto);
        let mut v = carried_error(field, p.true_checksum(from), p.true_checksum(to));
        if proto == 17 && v == 0 {
            v = 0xffff; // RFC 768: a computed zero is sent as all ones
        }
        Csum::Value(v)
    };
    let t64 = tcp_data(40000, 80, 300);
    let udp64 = udp(5353, 53, 77);
    let t46 = linux4(tcp_data(80, 40000, 300));
    let cases = vec![
        partial_6to4(
            "6to4 TCP, partial field updated as a full checksum",
            t64.clone(),
            Csum::Partial,
            carried(&t64, &v6, &v4, 6),
        ),
        partial_6to4(
            "6to4 UDP, partial field updated as a full checksum",
            udp64.clone(),
            Csum::Partial,
            carried(&udp64, &v6, &v4, 17),
        ),
        partial_4to6(
            "4to6 TCP, partial field updated as a full checksum",
            t46.clone(),
            Csum::Partial,
            carried(&t46, &s4, &s6, 6),
        ),
    ];
    // The expected outputs must differ from the flagged behaviour, or the cases prove nothing.
    for (p, from, to, proto) in [
        (&t64, &v6, &v4, 6u8),
        (&udp64, &v6, &v4, 17),
        (&t46, &s4, &s6, 6),
    ] {
        let Csum::Value(v) = carried(p, from, to, proto) else {
            unreachable!()
        };
        assert_ne!(
            v,
            partial_csum(to, p.l4_len(), proto),
            "test setup: both readings give the same field"
        );
    }
    finish(cases.len(), x.check_all(&cases));
}

/// Parses `frame` with etherparse and recomputes every checksum it carries.
fn verify_checksums(frame: &[u8]) -> Result<(), String> {
    let p = SlicedPacket::from_ethernet(frame)
        .map_err(|e| format!("etherparse cannot parse the output: {e:?}"))?;
    let ps = match &p.net {
        Some(NetSlice::Ipv4(ip)) => {
            let h = ip.header();
            let recomputed = h.to_header().calc_header_checksum();
            if recomputed != h.header_checksum() {
                return Err(format!(
                    "IPv4 header checksum {:#06x}, recomputed {recomputed:#06x}",
                    h.header_checksum()
                ));
            }
            Pseudo::V4 {
                src: h.source(),
                dst: h.destination(),
            }
        }
        Some(NetSlice::Ipv6(ip)) => Pseudo::V6 {
            src: ip.header().source(),
            dst: ip.header().destination(),
        },
        None => return Err("etherparse finds no IP header in the output".into()),
    };
    let mismatch = |what: &str, field: u16, recomputed: u16| {
        if field == recomputed {
            Ok(())
        } else {
            Err(format!(
                "{what} checksum {field:#06x}, recomputed {recomputed:#06x}"
            ))
        }
    };
    match (&p.transport, ps) {
        (Some(TransportSlice::Tcp(t)), Pseudo::V4 { src, dst }) => {
            mismatch("TCP", t.checksum(), t.calc_checksum_ipv4(src, dst).unwrap())
        }
        (Some(TransportSlice::Tcp(t)), Pseudo::V6 { src, dst }) => {
            mismatch("TCP", t.checksum(), t.calc_checksum_ipv6(src, dst).unwrap())
        }
        // Zero means "no checksum" in IPv4 (RFC 768).
        (Some(TransportSlice::Udp(u)), Pseudo::V4 { .. }) if u.checksum() == 0 => Ok(()),
        (Some(TransportSlice::Udp(u)), Pseudo::V4 { src, dst }) => mismatch(
            "UDP",
            u.checksum(),
            u.to_header()
                .calc_checksum_ipv4_raw(src, dst, u.payload())
                .unwrap(),
        ),
        (Some(TransportSlice::Udp(u)), Pseudo::V6 { src, dst }) => mismatch(
            "UDP",
            u.checksum(),
            u.to_header()
                .calc_checksum_ipv6_raw(src, dst, u.payload())
                .unwrap(),
        ),
        (Some(TransportSlice::Icmpv4(i)), _) => mismatch(
            "ICMP",
            i.checksum(),
            i.icmp_type().calc_checksum(i.payload()),
        ),
        (Some(TransportSlice::Icmpv6(i)), Pseudo::V6 { src, dst }) => {
            if i.is_checksum_valid(src, dst) {
                Ok(())
            } else {
                Err(format!(
                    "ICMPv6 checksum {:#06x} does not verify",
                    i.checksum()
                ))
            }
        }
        (Some(TransportSlice::Icmpv6(_)), Pseudo::V4 { .. }) => {
            Err("ICMPv6 inside IPv4 in the output".into())
        }
        // Another protocol: nothing of ours to verify.
        (None, _) => Ok(()),
    }
}

/// `frame` with 40 bytes of padding after its packet, as a link may deliver it (Ethernet pads
/// to 60 bytes); the packet's own length fields are unchanged.
fn padded(mut frame: Vec<u8>) -> Vec<u8> {
    frame.extend([0u8; 40]);
    frame
}

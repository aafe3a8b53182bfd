//! Unsolicited TCP SYNs (RFC 6146 section 3.5.2.2): the dataplane holds each IPv4 SYN that
//! finds no binding (`HELD_SYNS`, `DropReason::UnsolicitedSyn`) so that an IPv6 SYN toward
//! the same host and port can complete a simultaneous open on its pool4 port. When no such
//! SYN comes within 6 seconds, "the NAT64 SHOULD send an ICMP Port Unreachable error (Type 3,
//! Code 3)" for the held one: the dataplane has no timer, so the daemon does it here.
//!
//! The errors are built here and handed to the kernel as if they had arrived on the translator
//! link (`Dataplane::inject`), which routes them like any packet. A raw socket would need
//! CAP_NET_RAW, which the daemon otherwise does without.
//!
//! A SYN from an IPv6 client to another client's pool4 port (stateful hairpinning) reaches
//! the table as its IPv4 translation, sent from the client's binding; its error goes to the
//! client as ICMPv6 Port Unreachable (RFC 4443 section 3.1, code 4), quoting the IPv6 SYN the
//! client sent, rebuilt here from the binding, as Jool answers it.

use std::net::{Ipv4Addr, Ipv6Addr};

use nat64_common::{
    checksum,
    state::{HeldSyn, SynKey},
};

/// TTL and hop limit of the errors, one more than the kernel's default: the kernel's forwarding
/// takes one on the way out, as for everything that enters through the translator link.
const HOPS: u8 = 65;

/// ICMPv4 Destination Unreachable, Port Unreachable (RFC 792).
const ICMP_DEST_UNREACH: u8 = 3;
const ICMP_PORT_UNREACH: u8 = 3;
/// ICMPv6 Destination Unreachable, Port Unreachable (RFC 4443 section 3.1).
const ICMP6_DEST_UNREACH: u8 = 1;
const ICMP6_PORT_UNREACH: u8 = 4;

/// The quoted SYN: the bytes the dataplane kept, as long as its header says they are.
pub fn quote(held: &HeldSyn) -> &[u8] {
    &held.packet[..(held.len as usize).min(held.packet.len())]
}

/// ICMPv4 Port Unreachable from `from` (the pool4 address the SYN went to) to `to`, quoting
/// `quote` (RFC 792: the offending header and at least 64 bits of its data; the SYN is kept
/// whole up to `HELD_SYN_BYTES`). Identification 0 and DF clear, as from Jool.
pub fn icmp4_port_unreachable(from: Ipv4Addr, to: Ipv4Addr, quote: &[u8]) -> Vec<u8> {
    let len = 20 + 8 + quote.len();
    let mut p = Vec::with_capacity(len);
    p.extend_from_slice(&[0x45, 0]);
    p.extend_from_slice(&(len as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 0, HOPS, 1, 0, 0]);
    p.extend_from_slice(&from.octets());
    p.extend_from_slice(&to.octets());
    let header: [u8; 20] = p[..20].try_into().expect("20 bytes");
    p[10..12].copy_from_slice(&checksum::ipv4_header(&header).to_be_bytes());
    p.extend_from_slice(&[ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, 0, 0, 0, 0, 0, 0]);
    p.extend_from_slice(quote);
    let c = checksum::compute(0, &p[20..]);
    p[22..24].copy_from_slice(&c.to_be_bytes());
    p
}

/// ICMPv6 Port Unreachable from `from` (this node) to `to`, quoting `quote` (RFC 4443
/// section 3.1: as much of the packet as fits in the minimum MTU).
pub fn icmp6_port_unreachable(from: Ipv6Addr, to: Ipv6Addr, quote: &[u8]) -> Vec<u8> {
    let quote = &quote[..quote.len().min(1280 - 48)];
    let plen = 8 + quote.len();
    let mut p = Vec::with_capacity(40 + plen);
    p.extend_from_slice(&[0x60, 0, 0, 0]);
    p.extend_from_slice(&(plen as u16).to_be_bytes());
    p.extend_from_slice(&[58, HOPS]);
    p.extend_from_slice(&from.octets());
    p.extend_from_slice(&to.octets());
    p.extend_from_slice(&[ICMP6_DEST_UNREACH, ICMP6_PORT_UNREACH, 0, 0, 0, 0, 0, 0]);
    p.extend_from_slice(quote);
    let pseudo = checksum::sum16(&from.octets()) + checksum::sum16(&to.octets()) + plen as u32 + 58;
    let c = checksum::compute(pseudo, &p[40..]);
    p[42..44].copy_from_slice(&c.to_be_bytes());
    p
}

/// The IPv6 SYN an IPv6 client sent, rebuilt from `syn4`, its translation toward another
/// client's pool4 port (stateful hairpinning): from the client `src6`, port `port6` (its
/// binding), to `dst6` (the pool4 address under pool6). The translation is undone as RFC 7915
/// section 5.1 did it: the traffic class from the TOS, the hop limit from the TTL plus the
/// hop the translator link took, the TCP checksum updated for the new pseudo-header and port
/// (RFC 1624; it stays right when the quote is cut). `None` if `syn4` is not an IPv4 TCP
/// packet with its ports.
pub fn untranslate_hairpin(
    syn4: &[u8],
    src6: Ipv6Addr,
    port6: u16,
    dst6: Ipv6Addr,
) -> Option<Vec<u8>> {
    let ihl = ((*syn4.first()? & 0x0f) as usize) * 4;
    if syn4[0] >> 4 != 4 || ihl < 20 || syn4.get(9) != Some(&6) || syn4.len() < ihl + 18 {
        return None;
    }
    let tot = u16::from_be_bytes([syn4[2], syn4[3]]) as usize;
    let plen = tot.checked_sub(ihl)?;
    let tcp = &syn4[ihl..];
    let src4: [u8; 4] = syn4[12..16].try_into().ok()?;
    let dst4: [u8; 4] = syn4[16..20].try_into().ok()?;
    let tos = syn4[1];
    let mut p = Vec::with_capacity(40 + tcp.len());
    p.extend_from_slice(&[0x60 | tos >> 4, tos << 4, 0, 0]);
    p.extend_from_slice(&(plen as u16).to_be_bytes());
    p.extend_from_slice(&[6, syn4[8].saturating_add(1)]);
    p.extend_from_slice(&src6.octets());
    p.extend_from_slice(&dst6.octets());
    let at = p.len();
    p.extend_from_slice(tcp);
    let old_port = u16::from_be_bytes([tcp[0], tcp[1]]);
    p[at..at + 2].copy_from_slice(&port6.to_be_bytes());
    let old = u16::from_be_bytes([tcp[16], tcp[17]]);
    let removed = checksum::sum4(&src4) + checksum::sum4(&dst4) + old_port as u32;
    let added = checksum::sum16(&src6.octets()) + checksum::sum16(&dst6.octets()) + port6 as u32;
    let new = checksum::update(old, removed, added);
    p[at + 16..at + 18].copy_from_slice(&new.to_be_bytes());
    Some(p)
}

/// The source this node would give a packet to `to` (the kernel's source address selection,
/// asked through an unconnected UDP socket: no packet is sent).
pub fn source_toward(to: Ipv6Addr) -> Option<Ipv6Addr> {
    let s = std::net::UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0)).ok()?;
    s.connect((to, 9)).ok()?;
    match s.local_addr().ok()?.ip() {
        std::net::IpAddr::V6(a) => Some(a),
        std::net::IpAddr::V4(_) => None,
    }
}

/// What one pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Answered {
    /// Port Unreachable errors handed to the kernel.
    pub sent: u64,
    /// Held SYNs whose time was up but that could not be answered (a hairpinned SYN whose
    /// client's binding is gone, no route back, no way to inject).
    pub unanswered: u64,
    /// Why the kernel refused the last error handed to it, if it refused any: unlike a
    /// binding gone, that is the node's fault, and every error after it fails the same way.
    pub inject_error: Option<String>,
}

/// Answers every held SYN whose 6 seconds are up with ICMP Port Unreachable (RFC 6146
/// section 3.5.2.2), at most `budget` per pass, and counts the errors sent
/// (`Generated::PortUnreachable`).
pub fn answer_expired(
    dp: &mut crate::Dataplane,
    cfg: &crate::Config,
    now_ns: u64,
    budget: usize,
) -> Result<Answered, crate::dataplane::DataplaneError> {
    let Some(st) = &cfg.stateful else {
        return Ok(Answered::default());
    };
    let due = dp.take_expired_syns(now_ns, budget)?;
    let mut out = Answered::default();
    for (k, h) in due {
        let remote = Ipv4Addr::from(k.remote4);
        let packet = if st.pool4.iter().any(|p| p.contains(&remote)) {
            hairpin_error(dp, cfg, &k, &h)
        } else {
            Some(icmp4_port_unreachable(
                Ipv4Addr::from(k.pool4),
                remote,
                quote(&h),
            ))
        };
        let Some(packet) = packet else {
            tracing::debug!(syn = %describe(&k, &h), "held SYN not answered: no way back to its sender");
            out.unanswered += 1;
            continue;
        };
        match dp.inject(&packet) {
            Ok(()) => out.sent += 1,
            Err(e) => {
                tracing::debug!(syn = %describe(&k, &h), error = %e, "held SYN not answered");
                out.unanswered += 1;
                out.inject_error = Some(e.to_string());
            }
        }
    }
    if out.sent > 0 {
        dp.count(
            nat64_common::Counter::Generated(nat64_common::Generated::PortUnreachable),
            out.sent,
        )?;
    }
    Ok(out)
}

/// The ICMPv6 error for a hairpinned SYN: to the client whose binding sent it, quoting the
/// IPv6 SYN it sent.
fn hairpin_error(
    dp: &mut crate::Dataplane,
    cfg: &crate::Config,
    k: &SynKey,
    h: &HeldSyn,
) -> Option<Vec<u8>> {
    let pool6 = cfg.pool6.0?;
    let key4 = nat64_common::state::Bib4Key {
        addr4: k.remote4,
        port4: k.remote_port,
        proto: nat64_common::state::BIB_TCP,
        _pad: 0,
    };
    let client = dp.bindings().ok()?.bib4.get(&key4, 0).ok()?;
    let src6 = Ipv6Addr::from(client.addr6);
    let dst6 = nat64_common::addr::embed(&pool6.network().octets(), pool6.prefix_len(), k.pool4)?;
    let syn6 = untranslate_hairpin(
        quote(h),
        src6,
        u16::from_be_bytes(client.port6),
        Ipv6Addr::from(dst6),
    )?;
    let from = source_toward(src6)?;
    Some(icmp6_port_unreachable(from, src6, &syn6))
}

/// What the key of a held SYN says, for logs.
pub fn describe(k: &SynKey, h: &HeldSyn) -> String {
    format!(
        "{}:{} -> {}:{}",
        Ipv4Addr::from(k.remote4),
        u16::from_be_bytes(k.remote_port),
        Ipv4Addr::from(k.pool4),
        u16::from_be_bytes(h.pool_port)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A SYN from the corpus (Jool's `so/46-sender.pkt`): 192.0.2.5:50000 -> 192.0.2.2:1500.
    const SYN4: &str = concat!(
        "4500002c000040004006b6c4c0000205c0000202",
        "c35005dc00000000000000005002006460420000",
        "00010203",
    );

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn the_port_unreachable_is_the_one_jool_sends() {
        let syn = hex(SYN4);
        let p = icmp4_port_unreachable(
            "192.0.2.2".parse().unwrap(),
            "192.0.2.5".parse().unwrap(),
            &syn,
        );
        // Jool's `so/46-receiver.pkt`, with the TTL the kernel's forwarding leaves (64).
        let mut want = hex("45000048000000004001f6adc0000202c00002050303812300000000");
        want.extend_from_slice(&syn);
        let mut got = p.clone();
        got[8] -= 1;
        got[10..12].copy_from_slice(&[0, 0]);
        want[10..12].copy_from_slice(&[0, 0]);
        assert_eq!(got, want);
        let header: [u8; 20] = p[..20].try_into().unwrap();
        assert_eq!(
            checksum::ipv4_header(&header),
            u16::from_be_bytes([p[10], p[11]])
        );
    }

    #[test]
    fn a_hairpinned_syn_is_rebuilt_as_the_client_sent_it() {
        // Jool's `so/66-sender.pkt`: 2001:db8::5#50001 -> 64:ff9b::192.0.2.2#1501, as its
        // translation arrives from the client's binding 192.0.2.2#7 with one hop taken.
        let sent6 = hex(concat!(
            "600000000018064020010db8000000000000000000000005",
            "0064ff9b0000000000000000c0000202",
            "c35105dd000000000000000050020064f487000000010203",
        ));
        let src6: Ipv6Addr = "2001:db8::5".parse().unwrap();
        let dst6: Ipv6Addr = "64:ff9b::c000:202".parse().unwrap();
        let mut syn4 = hex("4500002c000040003f060000c0000202c0000202");
        let header: [u8; 20] = syn4[..20].try_into().unwrap();
        let c = checksum::ipv4_header(&header);
        syn4[10..12].copy_from_slice(&c.to_be_bytes());
        // The TCP segment with source port 7, its checksum for the IPv4 pseudo-header.
        let mut tcp = sent6[40..].to_vec();
        tcp[0..2].copy_from_slice(&7u16.to_be_bytes());
        tcp[16..18].copy_from_slice(&[0, 0]);
        let pseudo = checksum::sum4(&[192, 0, 2, 2]) * 2 + 6 + tcp.len() as u32;
        let c = checksum::compute(pseudo, &tcp);
        tcp[16..18].copy_from_slice(&c.to_be_bytes());
        syn4.extend_from_slice(&tcp);
        let back = untranslate_hairpin(&syn4, src6, 50001, dst6).unwrap();
        assert_eq!(back, sent6);
        // Cut short, the checksum still comes back.
        let cut = untranslate_hairpin(&syn4[..40], src6, 50001, dst6).unwrap();
        assert_eq!(cut, sent6[..60]);
    }

    #[test]
    fn the_icmpv6_error_checksums() {
        let from: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let to: Ipv6Addr = "2001:db8::5".parse().unwrap();
        let p = icmp6_port_unreachable(from, to, &[0x60; 64]);
        assert_eq!(p.len(), 40 + 8 + 64);
        let pseudo = checksum::sum16(&from.octets()) + checksum::sum16(&to.octets()) + 72 + 58;
        assert_eq!(checksum::compute(pseudo, &p[40..]), 0);
        assert_eq!((p[40], p[41]), (1, 4));
    }
}

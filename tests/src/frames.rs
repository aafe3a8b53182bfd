//! Reading frames in failure messages and checking their checksums from scratch: the
//! diagnostics the packet-level tests share. Quoted packets inside ICMP errors are understood
//! too, so a byte that differs there is named as such.

use std::fmt::Write as _;

use etherparse::{Ipv4HeaderSlice, Ipv6HeaderSlice, NetSlice, SlicedPacket, TransportSlice};

/// The big-endian 16-bit word at `off`, or 0 past the end.
fn be16(b: &[u8], off: usize) -> u16 {
    b.get(off..off + 2)
        .map_or(0, |w| u16::from_be_bytes([w[0], w[1]]))
}

/// Every differing byte with its offset and header field (named after the expected frame's
/// layout, quoted packet included), then both frames in hex.
pub fn diff(expected: &[u8], got: &[u8]) -> String {
    let mut s = String::new();
    if expected.len() != got.len() {
        let _ = writeln!(
            s,
            "  length: expected {} bytes, got {}",
            expected.len(),
            got.len()
        );
    }
    let _ = writeln!(
        s,
        "  {:>6}  {:<44} {:>8}  {:>8}",
        "offset", "field", "expected", "got"
    );
    let mut shown = 0;
    for i in 0..expected.len().max(got.len()) {
        let (e, g) = (expected.get(i), got.get(i));
        if e == g {
            continue;
        }
        shown += 1;
        if shown > 40 {
            let _ = writeln!(s, "  ... (more differences)");
            break;
        }
        let hex = |b: Option<&u8>| b.map_or("-".to_string(), |b| format!("0x{b:02x}"));
        let _ = writeln!(
            s,
            "  {i:>6}  {:<44} {:>8}  {:>8}",
            field_name(expected, i),
            hex(e),
            hex(g)
        );
    }
    let _ = writeln!(s, "  expected:\n{}", hexdump(expected, got));
    let _ = write!(s, "  got:\n{}", hexdump(got, expected));
    s
}

/// `b` in hex, 16 bytes a line: the headers (first 128 bytes: outer header, ICMP header,
/// quoted headers) and every line that differs from `other`; identical lines after that are
/// elided.
pub fn hexdump(b: &[u8], other: &[u8]) -> String {
    let mut s = String::new();
    let mut elided = 0;
    for (n, line) in b.chunks(16).enumerate() {
        let off = n * 16;
        if off >= 128 && other.get(off..off + line.len()) == Some(line) {
            elided += 1;
            continue;
        }
        if elided > 0 {
            let _ = writeln!(s, "    ....  ({elided} identical lines)");
            elided = 0;
        }
        let words: Vec<String> = line.iter().map(|x| format!("{x:02x}")).collect();
        let _ = writeln!(s, "    {off:04x}  {}", words.join(" "));
    }
    if elided > 0 {
        let _ = writeln!(s, "    ....  ({elided} identical lines)");
    }
    s
}

/// Which field byte `off` of `frame` belongs to: Ethernet, outer IP, ICMP header, then the
/// quoted IP header and transport header ("quoted ...").
pub fn field_name(frame: &[u8], off: usize) -> String {
    match off {
        0..=5 => return "Ethernet destination".into(),
        6..=11 => return "Ethernet source".into(),
        12..=13 => return "EtherType".into(),
        _ => {}
    }
    let Some(ip) = frame.get(14..) else {
        return "beyond the expected frame".into();
    };
    let o = off - 14;
    match ip_field(ip, o, true) {
        Ok(name) => name,
        Err((1 | 58, l)) if l >= 8 => {
            let quoted = &ip[o - l + 8..];
            match ip_field(quoted, l - 8, false) {
                Ok(name) => format!("quoted {name}"),
                Err((p, l)) => format!("quoted {}", transport_field(p, l)),
            }
        }
        Err((p, l)) => transport_field(p, l),
    }
}

/// The IP header field of byte `o` of `ip`, or `Err((protocol, offset after the IP header))`.
/// Only an outer packet has an end (a quoted one is usually cut short).
fn ip_field(ip: &[u8], o: usize, outer: bool) -> Result<String, (u8, usize)> {
    let name = match ip.first().map(|b| b >> 4) {
        Some(4) if ip.len() >= 20 => {
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            let tot = usize::from(be16(ip, 2));
            match o {
                0 => "IPv4 version/IHL",
                1 => "IPv4 TOS",
                2..=3 => "IPv4 total length",
                4..=5 => "IPv4 identification",
                6..=7 => "IPv4 flags/fragment offset",
                8 => "IPv4 TTL",
                9 => "IPv4 protocol",
                10..=11 => "IPv4 header checksum",
                12..=15 => "IPv4 source",
                16..=19 => "IPv4 destination",
                _ if o < ihl => "IPv4 options",
                _ if outer && o >= tot => "after the IPv4 packet",
                _ => return Err((ip[9], o - ihl)),
            }
        }
        Some(6) if ip.len() >= 40 => {
            let plen = usize::from(be16(ip, 4));
            match o {
                0 => "IPv6 version/traffic class",
                1 => "IPv6 traffic class/flow label",
                2..=3 => "IPv6 flow label",
                4..=5 => "IPv6 payload length",
                6 => "IPv6 next header",
                7 => "IPv6 hop limit",
                8..=23 => "IPv6 source",
                24..=39 => "IPv6 destination",
                _ if outer && o >= 40 + plen => "after the IPv6 packet",
                _ => return Err((ip[6], o - 40)),
            }
        }
        _ => {
            return Ok(format!(
                "byte {o} of a packet that is neither IPv4 nor IPv6"
            ));
        }
    };
    Ok(name.into())
}

fn transport_field(proto: u8, o: usize) -> String {
    let name = match (proto, o) {
        (6, 0..=1) => "TCP source port",
        (6, 2..=3) => "TCP destination port",
        (6, 4..=7) => "TCP sequence number",
        (6, 8..=11) => "TCP acknowledgment number",
        (6, 12) => "TCP data offset",
        (6, 13) => "TCP flags",
        (6, 14..=15) => "TCP window",
        (6, 16..=17) => "TCP checksum",
        (6, 18..=19) => "TCP urgent pointer",
        (6, _) => return format!("TCP options or data (+{})", o - 20),
        (17, 0..=1) => "UDP source port",
        (17, 2..=3) => "UDP destination port",
        (17, 4..=5) => "UDP length",
        (17, 6..=7) => "UDP checksum",
        (17, _) => return format!("UDP data (+{})", o - 8),
        (1 | 58, 0) => "ICMP type",
        (1 | 58, 1) => "ICMP code",
        (1 | 58, 2..=3) => "ICMP checksum",
        (1 | 58, 4..=7) => "ICMP 2nd word (pointer/MTU/id+seq)",
        (1 | 58, _) => return format!("ICMP data (+{})", o - 8),
        _ => return format!("protocol {proto} payload (+{o})"),
    };
    name.into()
}

/// Recomputes the IPv4 header checksum of an Ethernet frame after a field changed (over the
/// header's IHL, options included).
pub fn fix_ipv4_checksum(frame: &mut [u8]) {
    frame[24..26].copy_from_slice(&[0, 0]);
    let ihl = usize::from(frame[14] & 0x0f) * 4;
    let sum = !folded_sum(&frame[14..14 + ihl]);
    frame[24..26].copy_from_slice(&sum.to_be_bytes());
}

/// The one's complement sum of `bytes` as 16-bit words (an odd last byte padded), folded:
/// 0xffff over a header or message whose checksum is right.
pub fn folded_sum(bytes: &[u8]) -> u16 {
    let mut s: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// Parses the output frame with etherparse and recomputes its checksums: the outer IPv4
/// header and ICMP or ICMPv6 checksum over the whole message, the quoted IPv4 header, and the
/// quoted transport checksum when the whole quoted packet is there.
pub fn verify_icmp_error_checksums(frame: &[u8]) -> Result<(), String> {
    let ip = frame.get(14..).ok_or("no IP packet in the output")?;
    verify_ip(ip).map_err(|e| format!("outer packet: {e}"))?;
    let hdr = match ip[0] >> 4 {
        4 => usize::from(ip[0] & 0x0f) * 4,
        _ => 40,
    };
    let quoted = ip.get(hdr + 8..).ok_or("no quoted packet in the output")?;
    let complete = match quoted.first().map(|b| b >> 4) {
        Some(4) => {
            let h = Ipv4HeaderSlice::from_slice(quoted)
                .map_err(|e| format!("quoted IPv4 header does not parse: {e:?}"))?;
            let recomputed = h.to_header().calc_header_checksum();
            if recomputed != h.header_checksum() {
                return Err(format!(
                    "quoted IPv4 header checksum {:#06x}, recomputed {recomputed:#06x}",
                    h.header_checksum()
                ));
            }
            usize::from(h.total_len()) == quoted.len()
        }
        Some(6) => {
            let h = Ipv6HeaderSlice::from_slice(quoted)
                .map_err(|e| format!("quoted IPv6 header does not parse: {e:?}"))?;
            40 + usize::from(h.payload_length()) == quoted.len()
        }
        _ => return Err("the quoted packet is neither IPv4 nor IPv6".into()),
    };
    if complete {
        verify_ip(quoted).map_err(|e| format!("quoted packet: {e}"))?;
    }
    Ok(())
}

/// Recomputes the checksums of a whole IP packet with etherparse.
fn verify_ip(ip: &[u8]) -> Result<(), String> {
    let p = SlicedPacket::from_ip(ip).map_err(|e| format!("etherparse cannot parse it: {e:?}"))?;
    let (src4, dst4, src6, dst6) = match &p.net {
        Some(NetSlice::Ipv4(ip)) => {
            let h = ip.header();
            let recomputed = h.to_header().calc_header_checksum();
            if recomputed != h.header_checksum() {
                return Err(format!(
                    "IPv4 header checksum {:#06x}, recomputed {recomputed:#06x}",
                    h.header_checksum()
                ));
            }
            (h.source(), h.destination(), [0; 16], [0; 16])
        }
        Some(NetSlice::Ipv6(ip)) => (
            [0; 4],
            [0; 4],
            ip.header().source(),
            ip.header().destination(),
        ),
        None => return Err("no IP header".into()),
    };
    let v4 = matches!(p.net, Some(NetSlice::Ipv4(_)));
    let mismatch = |what: &str, field: u16, recomputed: u16| {
        if field == recomputed {
            Ok(())
        } else {
            Err(format!(
                "{what} checksum {field:#06x}, recomputed {recomputed:#06x}"
            ))
        }
    };
    match &p.transport {
        Some(TransportSlice::Tcp(t)) if v4 => mismatch(
            "TCP",
            t.checksum(),
            t.calc_checksum_ipv4(src4, dst4).unwrap(),
        ),
        Some(TransportSlice::Tcp(t)) => mismatch(
            "TCP",
            t.checksum(),
            t.calc_checksum_ipv6(src6, dst6).unwrap(),
        ),
        // Zero is "no checksum"; the byte comparison says whether zero was expected.
        Some(TransportSlice::Udp(u)) if u.checksum() == 0 => Ok(()),
        Some(TransportSlice::Udp(u)) if v4 => mismatch(
            "UDP",
            u.checksum(),
            u.to_header()
                .calc_checksum_ipv4_raw(src4, dst4, u.payload())
                .unwrap(),
        ),
        Some(TransportSlice::Udp(u)) => mismatch(
            "UDP",
            u.checksum(),
            u.to_header()
                .calc_checksum_ipv6_raw(src6, dst6, u.payload())
                .unwrap(),
        ),
        // Over the raw message: etherparse rebuilds the header from the type it parsed, which
        // drops what it does not model (RFC 4884's length attribute in an error).
        Some(TransportSlice::Icmpv4(i)) if v4 => {
            let sum = folded_sum(i.slice());
            if sum == 0xffff {
                Ok(())
            } else {
                Err(format!(
                    "ICMP checksum {:#06x} does not verify (sum {sum:#06x})",
                    i.checksum()
                ))
            }
        }
        Some(TransportSlice::Icmpv6(i)) if !v4 => {
            if i.is_checksum_valid(src6, dst6) {
                Ok(())
            } else {
                Err(format!(
                    "ICMPv6 checksum {:#06x} does not verify",
                    i.checksum()
                ))
            }
        }
        Some(TransportSlice::Icmpv4(_)) => Err("ICMP inside IPv6".into()),
        Some(TransportSlice::Icmpv6(_)) => Err("ICMPv6 inside IPv4".into()),
        // Another protocol: nothing to verify.
        None => Ok(()),
    }
}

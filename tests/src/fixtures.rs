//! The packet model and frame builders of the packet-level suites (`packet.rs`,
//! `icmp_errors.rs`), with the addresses, MAC addresses and base configuration of the lab
//! translator they test, which the other packet-level suites share too.
//!
//! A [`Pkt`] describes a packet once, independently of the IP family: [`Pkt::v6`] and
//! [`Pkt::v4`] build it as an Ethernet frame of either family, [`Pkt::ip6`] and [`Pkt::ip4`] as
//! a bare IP packet (to quote inside an ICMP error), each with the checksums of that family
//! computed from scratch by etherparse. So the same value gives a test's input and its expected
//! output, and no expectation shares code with the dataplane (`nat64_common::checksum` is not
//! used here).
//!
//! Addresses come from documentation ranges only: the IPv6 client 2001:db8:6::102 is
//! 198.51.100.2 in IPv4 through the explicit address mapping 2001:db8:6::100/120 <->
//! 198.51.100.0/24 (RFC 7757), and the IPv4 server 192.0.2.2 is 64:ff9b::c000:202 in IPv6
//! through the Well-Known Prefix (RFC 6052).

use std::net::{Ipv4Addr, Ipv6Addr};

use etherparse::{
    EtherType, Ethernet2Header, IcmpEchoHeader, Icmpv4Header, Icmpv4Type, Icmpv6Header, Icmpv6Type,
    IpFragOffset, IpNumber, Ipv4Dscp, Ipv4Ecn, Ipv4Header, Ipv4Options, Ipv6FlowLabel, Ipv6Header,
    TcpHeader, TcpOptionElement, UdpHeader,
};
use nat64_common::L4Proto;

// ---------------------------------------------------------------------------------------------
// Addresses and configuration
// ---------------------------------------------------------------------------------------------

/// Locally administered MAC addresses; the translator must keep both.
pub const MAC_DST: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
pub const MAC_SRC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x02];

pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86dd;

/// The IPv6-only client, and how IPv4 hosts see it (EAM).
pub const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 6, 0, 0, 0, 0, 0x102);
pub const CLIENT4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
/// The IPv4-only server, and how IPv6 hosts see it (64:ff9b::192.0.2.2).
pub const SERVER4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
pub const SERVER6: Ipv6Addr = Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0xc000, 0x0202);

/// An IPv6 address literal; a typo in a test's address panics naming it.
pub fn a6(s: &str) -> Ipv6Addr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// An IPv4 address literal; a typo in a test's address panics naming it.
pub fn a4(s: &str) -> Ipv4Addr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// The client's EAM entry, as a TOML table to add to a configuration.
pub const EAM_CLIENT: &str = r#"
[[eam]]
ipv6 = "2001:db8:6::100/120"
ipv4 = "198.51.100.0/24"
"#;

/// The lab's translator: the Well-Known Prefix plus the client's EAM entry, no RFC 6791
/// address.
pub fn base_config() -> String {
    format!("pool6 = \"64:ff9b::/96\"\n{EAM_CLIENT}")
}

// ---------------------------------------------------------------------------------------------
// Checksums, written here rather than taken from `nat64_common::checksum` so that the
// expectations do not share code with the dataplane
// ---------------------------------------------------------------------------------------------

/// The addresses of a pseudo-header.
#[derive(Clone, Copy, Debug)]
pub enum Pseudo {
    V4 { src: [u8; 4], dst: [u8; 4] },
    V6 { src: [u8; 16], dst: [u8; 16] },
}

impl Pseudo {
    fn addr_bytes(&self) -> Vec<u8> {
        match self {
            Pseudo::V4 { src, dst } => [&src[..], &dst[..]].concat(),
            Pseudo::V6 { src, dst } => [&src[..], &dst[..]].concat(),
        }
    }
}

/// One's complement sum of big-endian 16-bit words, unfolded.
fn word_sum(bytes: &[u8]) -> u64 {
    bytes
        .chunks(2)
        .map(|c| u64::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum()
}

/// A one's complement sum folded to 16 bits (end-around carry).
fn fold(mut s: u64) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// The CHECKSUM_PARTIAL value of a TCP or UDP header: the pseudo-header sum (addresses, upper
/// layer length, protocol), folded and not complemented.
pub fn partial_csum(ps: &Pseudo, len: usize, proto: u8) -> u16 {
    fold(word_sum(&ps.addr_bytes()) + len as u64 + u64::from(proto))
}

/// What an RFC 1624 update leaves in a checksum field that did not hold the true checksum:
/// the output is off from the true new checksum by exactly what the input was off from the
/// true old one. In one's complement sums (`S = !checksum`): `S_out = S_in + S_new - S_old`.
pub fn carried_error(field_in: u16, true_old: u16, true_new: u16) -> u16 {
    !fold(u64::from(!field_in) + u64::from(!true_new) + u64::from(true_old))
}

// ---------------------------------------------------------------------------------------------
// ICMP headers
// ---------------------------------------------------------------------------------------------

/// An ICMP or ICMPv6 header without its checksum: type, code and the second 32-bit word
/// (unused, pointer or MTU).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Msg {
    pub ty: u8,
    pub code: u8,
    pub rest: [u8; 4],
}

/// A header whose second word is unused (zero).
pub const fn msg(ty: u8, code: u8) -> Msg {
    Msg {
        ty,
        code,
        rest: [0; 4],
    }
}

/// An ICMPv4 message: header, checksum computed by etherparse over header and `body`.
pub fn icmp4_message(m: Msg, body: &[u8]) -> Vec<u8> {
    let t = Icmpv4Type::Unknown {
        type_u8: m.ty,
        code_u8: m.code,
        bytes5to8: m.rest,
    };
    let h = Icmpv4Header::with_checksum(t, body);
    [&h.to_bytes()[..], body].concat()
}

/// An ICMPv6 message: header, checksum computed by etherparse with the pseudo-header.
pub fn icmp6_message(m: Msg, src: Ipv6Addr, dst: Ipv6Addr, body: &[u8]) -> Vec<u8> {
    let t = Icmpv6Type::Unknown {
        type_u8: m.ty,
        code_u8: m.code,
        bytes5to8: m.rest,
    };
    let h =
        Icmpv6Header::with_checksum(t, src.octets(), dst.octets(), body).expect("ICMPv6 checksum");
    [&h.to_bytes()[..], body].concat()
}

// ---------------------------------------------------------------------------------------------
// The packet model
// ---------------------------------------------------------------------------------------------

/// The transport part of a packet, independent of the IP family: the same value builds the
/// IPv6 input and the expected IPv4 output (or the other way round), each with the checksums of
/// its own family computed from scratch.
#[derive(Clone, Debug)]
pub enum L4 {
    Tcp(TcpHeader),
    Udp {
        sport: u16,
        dport: u16,
    },
    /// ICMP echo (types 8/0) in IPv4, ICMPv6 echo (128/129) in IPv6.
    Echo {
        reply: bool,
        id: u16,
        seq: u16,
    },
    /// An ICMP (IPv4) or ICMPv6 (IPv6) message with this raw type and code.
    Icmp {
        ty: u8,
        code: u8,
    },
    /// Any protocol number; `Pkt::payload` is the whole IP payload.
    Raw(u8),
}

/// What the TCP or UDP checksum field holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Csum {
    /// The correct checksum, computed by etherparse.
    Full,
    /// Zero ("no checksum", legal for UDP over IPv4 only).
    Zero,
    /// The CHECKSUM_PARTIAL form: the folded, uncomplemented pseudo-header sum.
    Partial,
    /// A given value.
    Value(u16),
}

/// A packet, family-neutral: `v6()` and `v4()` build it as an Ethernet frame of either family,
/// `ip6()` and `ip4()` as a bare IP packet.
#[derive(Clone, Debug)]
pub struct Pkt {
    pub l4: L4,
    pub csum: Csum,
    pub payload: Vec<u8>,
    /// IPv6 traffic class, or IPv4 TOS.
    pub tos: u8,
    /// Hop limit, or TTL.
    pub hop: u8,
    /// IPv6 only.
    pub flow: u32,
    /// IPv4 only.
    pub id: u16,
    pub df: bool,
    pub mf: bool,
    pub frag_off: u16,
    pub options: Vec<u8>,
    /// Bytes after the IP packet in the frame (Ethernet padding); not part of `ip6()`/`ip4()`.
    pub trailer: Vec<u8>,
}

impl Pkt {
    pub fn new(l4: L4, payload: Vec<u8>) -> Self {
        Self {
            l4,
            csum: Csum::Full,
            payload,
            tos: 0,
            hop: 64,
            flow: 0,
            id: 0,
            df: false,
            mf: false,
            frag_off: 0,
            options: Vec::new(),
            trailer: Vec::new(),
        }
    }

    /// Length of the transport header plus payload (the IPv6 payload length, the IPv4 total
    /// length minus the IPv4 header).
    pub fn l4_len(&self) -> usize {
        let hdr = match &self.l4 {
            L4::Tcp(h) => h.header_len(),
            L4::Udp { .. } | L4::Echo { .. } | L4::Icmp { .. } => 8,
            L4::Raw(_) => 0,
        };
        hdr + self.payload.len()
    }

    /// The counter the translator files this packet under.
    pub fn counted_as(&self) -> L4Proto {
        match self.l4 {
            L4::Tcp(_) => L4Proto::Tcp,
            L4::Udp { .. } => L4Proto::Udp,
            L4::Echo { .. } | L4::Icmp { .. } => L4Proto::Icmp,
            L4::Raw(_) => L4Proto::Other,
        }
    }

    /// Whether the output's transport checksum must verify as a full checksum.
    pub fn full_checksums(&self) -> bool {
        matches!(self.csum, Csum::Full | Csum::Zero)
    }

    /// Transport header and payload for the pseudo-header `ps`: (IP protocol, bytes).
    pub fn transport(&self, ps: &Pseudo) -> (u8, Vec<u8>) {
        let payload = &self.payload;
        let pick = |full: u16, partial: u16| match self.csum {
            Csum::Full => full,
            Csum::Zero => 0,
            Csum::Partial => partial,
            Csum::Value(v) => v,
        };
        match &self.l4 {
            L4::Tcp(h) => {
                let mut h = h.clone();
                h.checksum = 0;
                let full = match *ps {
                    Pseudo::V4 { src, dst } => h.calc_checksum_ipv4_raw(src, dst, payload),
                    Pseudo::V6 { src, dst } => h.calc_checksum_ipv6_raw(src, dst, payload),
                }
                .expect("TCP checksum");
                h.checksum = pick(full, partial_csum(ps, self.l4_len(), 6));
                (6, [&h.to_bytes()[..], payload].concat())
            }
            L4::Udp { sport, dport } => {
                let mut h = UdpHeader {
                    source_port: *sport,
                    destination_port: *dport,
                    length: (8 + payload.len()) as u16,
                    checksum: 0,
                };
                let full = match *ps {
                    Pseudo::V4 { src, dst } => h.calc_checksum_ipv4_raw(src, dst, payload),
                    Pseudo::V6 { src, dst } => h.calc_checksum_ipv6_raw(src, dst, payload),
                }
                .expect("UDP checksum");
                h.checksum = pick(full, partial_csum(ps, self.l4_len(), 17));
                (17, [&h.to_bytes()[..], payload].concat())
            }
            L4::Echo { reply, id, seq } => {
                let echo = IcmpEchoHeader { id: *id, seq: *seq };
                match *ps {
                    Pseudo::V4 { .. } => {
                        let ty = if *reply {
                            Icmpv4Type::EchoReply(echo)
                        } else {
                            Icmpv4Type::EchoRequest(echo)
                        };
                        let h = Icmpv4Header::with_checksum(ty, payload);
                        (1, [&h.to_bytes()[..], payload].concat())
                    }
                    Pseudo::V6 { src, dst } => {
                        let ty = if *reply {
                            Icmpv6Type::EchoReply(echo)
                        } else {
                            Icmpv6Type::EchoRequest(echo)
                        };
                        let h = Icmpv6Header::with_checksum(ty, src, dst, payload)
                            .expect("ICMPv6 checksum");
                        (58, [&h.to_bytes()[..], payload].concat())
                    }
                }
            }
            L4::Icmp { ty, code } => match *ps {
                Pseudo::V4 { .. } => (1, icmp4_message(msg(*ty, *code), payload)),
                Pseudo::V6 { src, dst } => (
                    58,
                    icmp6_message(msg(*ty, *code), src.into(), dst.into(), payload),
                ),
            },
            L4::Raw(p) => (*p, payload.clone()),
        }
    }

    /// The true (full) TCP or UDP checksum of this packet under `ps`.
    pub fn true_checksum(&self, ps: &Pseudo) -> u16 {
        let full = Pkt {
            csum: Csum::Full,
            ..self.clone()
        };
        let (proto, bytes) = full.transport(ps);
        let off = match proto {
            6 => 16,
            17 => 6,
            p => panic!("no TCP/UDP checksum in protocol {p}"),
        };
        u16::from_be_bytes([bytes[off], bytes[off + 1]])
    }

    /// This packet as an IPv6 packet, without Ethernet header or trailer. A fragment (MF set
    /// or an offset) carries a Fragment header, as RFC 7915 section 4.1 makes of an IPv4
    /// fragment: the offset and M flag, the Identification zero-extended to 32 bits.
    pub fn ip6(&self, src: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
        let (nh, l4) = self.transport(&Pseudo::V6 {
            src: src.octets(),
            dst: dst.octets(),
        });
        let (nh, l4) = if self.mf || self.frag_off != 0 {
            let [o0, o1] = ((self.frag_off << 3) | u16::from(self.mf)).to_be_bytes();
            let [i0, i1] = self.id.to_be_bytes();
            (44, [&[nh, 0, o0, o1, 0, 0, i0, i1][..], &l4].concat())
        } else {
            (nh, l4)
        };
        let ip = Ipv6Header {
            traffic_class: self.tos,
            flow_label: Ipv6FlowLabel::try_new(self.flow).expect("flow label"),
            payload_length: l4.len() as u16,
            next_header: IpNumber(nh),
            hop_limit: self.hop,
            source: src.octets(),
            destination: dst.octets(),
        };
        [&ip.to_bytes()[..], &l4].concat()
    }

    /// This packet as an IPv4 packet with a correct header checksum, without Ethernet header
    /// or trailer.
    pub fn ip4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
        let (proto, l4) = self.transport(&Pseudo::V4 {
            src: src.octets(),
            dst: dst.octets(),
        });
        let mut ip = Ipv4Header {
            dscp: Ipv4Dscp::try_new(self.tos >> 2).expect("dscp"),
            ecn: Ipv4Ecn::try_new(self.tos & 3).expect("ecn"),
            total_len: (20 + self.options.len() + l4.len()) as u16,
            identification: self.id,
            dont_fragment: self.df,
            more_fragments: self.mf,
            fragment_offset: IpFragOffset::try_new(self.frag_off).expect("fragment offset"),
            time_to_live: self.hop,
            protocol: IpNumber(proto),
            header_checksum: 0,
            source: src.octets(),
            destination: dst.octets(),
            options: Ipv4Options::try_from(&self.options[..]).expect("IPv4 options"),
        };
        ip.header_checksum = ip.calc_header_checksum();
        [&ip.to_bytes()[..], &l4].concat()
    }

    /// This packet as an Ethernet frame carrying IPv6.
    pub fn v6(&self, src: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
        [&eth(ETH_P_IPV6)[..], &self.ip6(src, dst), &self.trailer].concat()
    }

    /// This packet as an Ethernet frame carrying IPv4, with a correct header checksum.
    pub fn v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
        [&eth(ETH_P_IP)[..], &self.ip4(src, dst), &self.trailer].concat()
    }
}

// ---------------------------------------------------------------------------------------------
// Builders
// ---------------------------------------------------------------------------------------------

/// An Ethernet header from `MAC_SRC` to `MAC_DST`.
pub fn eth(ether_type: u16) -> Vec<u8> {
    Ethernet2Header {
        source: MAC_SRC,
        destination: MAC_DST,
        ether_type: EtherType(ether_type),
    }
    .to_bytes()
    .to_vec()
}

/// Deterministic payload bytes.
pub fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// A Linux-style SYN: MSS, SACK permitted, timestamps, NOP, window scale (20 option bytes, a
/// 40-byte header).
pub fn syn(sport: u16, dport: u16) -> Pkt {
    let mut h = TcpHeader::new(sport, dport, 0x1a2b_3c4d, 64800);
    h.syn = true;
    h.set_options(&[
        TcpOptionElement::MaximumSegmentSize(1440),
        TcpOptionElement::SelectiveAcknowledgementPermitted,
        TcpOptionElement::Timestamp(0x0102_0304, 0),
        TcpOptionElement::Noop,
        TcpOptionElement::WindowScale(7),
    ])
    .expect("SYN options");
    Pkt::new(L4::Tcp(h), Vec::new())
}

/// The server's answer to `syn(40000, 80)`: it acknowledges the SYN and echoes its timestamp.
pub fn syn_ack() -> Pkt {
    let mut h = TcpHeader::new(80, 40000, 0x5566_7788, 65160);
    h.syn = true;
    h.ack = true;
    h.acknowledgment_number = 0x1a2b_3c4e;
    h.set_options(&[
        TcpOptionElement::MaximumSegmentSize(1460),
        TcpOptionElement::SelectiveAcknowledgementPermitted,
        TcpOptionElement::Timestamp(0x0a0b_0c0d, 0x0102_0304),
        TcpOptionElement::Noop,
        TcpOptionElement::WindowScale(7),
    ])
    .expect("SYN-ACK options");
    Pkt::new(L4::Tcp(h), Vec::new())
}

/// An established-connection segment with timestamps (a 32-byte header) and `n` bytes of data.
pub fn tcp_data(sport: u16, dport: u16, n: usize) -> Pkt {
    let mut h = TcpHeader::new(sport, dport, 0x1a2b_3c4e, 507);
    h.ack = true;
    h.psh = true;
    h.acknowledgment_number = 0x5566_7789;
    h.set_options(&[
        TcpOptionElement::Noop,
        TcpOptionElement::Noop,
        TcpOptionElement::Timestamp(0x0102_0400, 0x0a0b_0c0d),
    ])
    .expect("data options");
    Pkt::new(L4::Tcp(h), pattern(n, 7))
}

pub fn udp(sport: u16, dport: u16, n: usize) -> Pkt {
    Pkt::new(L4::Udp { sport, dport }, pattern(n, 3))
}

pub fn echo(reply: bool, n: usize) -> Pkt {
    Pkt::new(
        L4::Echo {
            reply,
            id: 0x4d2,
            seq: 7,
        },
        pattern(n, 11),
    )
}

/// An ICMP or ICMPv6 message of this type and code, with 40 bytes of body.
pub fn icmp(ty: u8, code: u8) -> Pkt {
    Pkt::new(L4::Icmp { ty, code }, pattern(40, 5))
}

pub fn raw(proto: u8, payload: Vec<u8>) -> Pkt {
    Pkt::new(L4::Raw(proto), payload)
}

/// An IPv4 packet as Linux sends it: DF set, some identification.
pub fn linux4(mut p: Pkt) -> Pkt {
    p.df = true;
    p.id = 0x1c46;
    p
}

// ---------------------------------------------------------------------------------------------
// Translation (RFC 7915), for expected packets
// ---------------------------------------------------------------------------------------------

/// The IPv4 packet RFC 7915 section 5.1 (section 5.3 for a quoted packet) makes of the IPv6
/// packet `p`: TOS from the traffic class (or zero), TTL equal to the hop limit (the kernel
/// decrements it when it forwards), DF=1 and ID 0 above 1260 bytes, DF=0 otherwise (the ID is
/// then taken from the output), no options, the transport part unchanged apart from its
/// checksum.
pub fn as_v4(p: &Pkt, copy_tos: bool) -> Pkt {
    Pkt {
        tos: if copy_tos { p.tos } else { 0 },
        flow: 0,
        id: 0,
        df: 20 + p.l4_len() > 1260,
        mf: false,
        frag_off: 0,
        options: Vec::new(),
        ..p.clone()
    }
}

/// The IPv6 packet RFC 7915 section 4.1 (section 4.3 for a quoted packet) makes of the IPv4
/// packet `p`: traffic class from the TOS (or zero), flow label zero, hop limit equal to the
/// TTL, options gone.
pub fn as_v6(p: &Pkt, copy_tos: bool) -> Pkt {
    Pkt {
        tos: if copy_tos { p.tos } else { 0 },
        flow: 0,
        options: Vec::new(),
        ..p.clone()
    }
}

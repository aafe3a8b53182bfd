//! Protocol numbers and wire constants the dataplane's parsers and rewriters share: frame and
//! header lengths, EtherTypes, IP protocol numbers, IPv4 flag bits, transport checksum offsets
//! and address families. Nothing else: layouts are in `packet.rs`.

/// Ethernet (RFC 894) header length and the EtherTypes of IPv4 and IPv6.
pub const ETH_LEN: usize = 14;
pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86dd;

/// IPv4 (RFC 791) header length without options; IPv6 (RFC 8200) fixed header length.
pub const IPV4_LEN: usize = 20;
pub const IPV6_LEN: usize = 40;

/// IPv4 flags and fragment offset, in the 16-bit word after the Identification (RFC 791).
pub const IPV4_DF: u16 = 0x4000;
pub const IPV4_MF: u16 = 0x2000;
pub const IPV4_OFFSET_MASK: u16 = 0x1fff;

/// IANA protocol numbers, as the IPv4 Protocol and IPv6 Next Header fields carry them.
pub const IPPROTO_HOPOPTS: u8 = 0;
pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_ROUTING: u8 = 43;
pub const IPPROTO_FRAGMENT: u8 = 44;
pub const IPPROTO_ICMPV6: u8 = 58;
pub const IPPROTO_DSTOPTS: u8 = 60;

/// The IPv6 Fragment header's length (RFC 8200 section 4.5).
pub const FRAG_LEN: usize = 8;

/// ICMP and ICMPv6 header length (type, code, checksum, the 4-byte rest).
pub const ICMP_LEN: usize = 8;

/// Offset of the checksum field in each transport header.
pub const TCP_CSUM_OFF: usize = 16;
pub const UDP_CSUM_OFF: usize = 6;

/// Address families of `bpf_fib_lookup`.
pub const AF_INET: u8 = 2;
pub const AF_INET6: u8 = 10;

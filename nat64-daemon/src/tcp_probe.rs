//! TCP keepalive probes (RFC 6146 section 3.5.2.2): when an established session's timer runs
//! out, "the NAT64 SHOULD send a probe packet ... to at least one of the endpoints of the TCP
//! connection. The probe packet is a TCP segment for the connection with no data. The sequence
//! number and the acknowledgment number are set to zero. All flags but the ACK flag are set to
//! zero. The state is moved to TRANS."
//!
//! The sweeper moves the session to TRANS (`bindings::Tables::sweep_probing`); this module
//! sends the probes, to the IPv6 host as Jool does, from the IPv4 endpoint's IPv6 address.
//! A live host answers an out-of-window segment with an ACK (RFC 9293 section 3.10.7.4),
//! which the dataplane translates and which makes the session established again; a host that
//! lost the connection answers with a RST, and one that is gone not at all: the session then
//! goes with the transitory timer. Without the probe, a connection idle for longer than the
//! established timer (2 hours 4 minutes by default) lost its binding, and its next segment
//! met a port that was no longer its own.
//!
//! The probes are handed to the kernel like the held SYNs' errors (`Dataplane::inject`).

use std::{
    net::{Ipv4Addr, Ipv6Addr},
    sync::atomic::{AtomicU64, Ordering},
};

use nat64_common::checksum;

use crate::bindings::Probe;

/// Probes handed to the kernel, and probes that could not be sent (no IPv6 address for the
/// IPv4 endpoint, the binding gone, or the kernel refused the injection), since the daemon
/// started.
pub static SENT: AtomicU64 = AtomicU64::new(0);
pub static FAILED: AtomicU64 = AtomicU64::new(0);

/// Hop limit of a probe, one more than the kernel's default: the kernel's forwarding takes one
/// on the way out, as for everything that enters through the translator link.
const HOPS: u8 = 65;

/// The window a probe advertises (Jool's).
const WINDOW: u16 = 8192;

/// The probe segment from `from` (the IPv4 endpoint as the IPv6 host knows it) to `to` (the
/// IPv6 host): an IPv6 packet with a 20-byte TCP header, sequence and acknowledgment numbers
/// zero, ACK the only flag.
pub fn packet(from: (Ipv6Addr, u16), to: (Ipv6Addr, u16)) -> Vec<u8> {
    const TCP_LEN: usize = 20;
    let mut p = Vec::with_capacity(40 + TCP_LEN);
    p.extend_from_slice(&[0x60, 0, 0, 0]);
    p.extend_from_slice(&(TCP_LEN as u16).to_be_bytes());
    p.extend_from_slice(&[6, HOPS]);
    p.extend_from_slice(&from.0.octets());
    p.extend_from_slice(&to.0.octets());
    p.extend_from_slice(&from.1.to_be_bytes());
    p.extend_from_slice(&to.1.to_be_bytes());
    // Sequence and acknowledgment numbers, data offset (5 words), flags (ACK), window,
    // checksum, urgent pointer.
    p.extend_from_slice(&[0; 8]);
    p.extend_from_slice(&[5 << 4, 0x10]);
    p.extend_from_slice(&WINDOW.to_be_bytes());
    p.extend_from_slice(&[0; 4]);
    let pseudo =
        checksum::sum16(&from.0.octets()) + checksum::sum16(&to.0.octets()) + TCP_LEN as u32 + 6;
    let c = checksum::compute(pseudo, &p[40..]);
    p[56..58].copy_from_slice(&c.to_be_bytes());
    p
}

/// Sends the probe of each of `probes` (see the module's description) and counts them.
pub fn send(dp: &crate::Dataplane, cfg: &crate::Config, probes: &[Probe]) {
    for pr in probes {
        let k = &pr.session.key;
        let remote = Ipv4Addr::from(k.remote4);
        let Some(from) = cfg.ipv6_of(remote) else {
            FAILED.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%remote, "TCP probe not sent: no IPv6 address for the remote");
            continue;
        };
        let Some((addr6, port6)) = pr.to else {
            FAILED.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%remote, "TCP probe not sent: the binding is gone");
            continue;
        };
        let to = (Ipv6Addr::from(addr6), port6);
        let p = packet((from, u16::from_be_bytes(k.remote_port)), to);
        match dp.inject(&p) {
            Ok(()) => {
                SENT.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                FAILED.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, to = %to.0, "TCP probe not sent");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The probe Jool sends (its `send_probe_packet`), but for the hop limit: IPv6 header,
    /// then a TCP header with ports swapped relative to the host's view, sequence and
    /// acknowledgment zero, ACK only, window 8192, and a checksum that verifies.
    #[test]
    fn the_probe_is_an_empty_ack_with_zero_numbers() {
        let from: Ipv6Addr = "64:ff9b::c000:202".parse().unwrap();
        let to: Ipv6Addr = "2001:db8:6::102".parse().unwrap();
        let p = packet((from, 443), (to, 40000));
        assert_eq!(p.len(), 60);
        assert_eq!(&p[..8], &[0x60, 0, 0, 0, 0, 20, 6, 65]);
        assert_eq!(&p[8..24], &from.octets());
        assert_eq!(&p[24..40], &to.octets());
        assert_eq!(&p[40..44], &[0x01, 0xbb, 0x9c, 0x40], "ports");
        assert_eq!(&p[44..52], &[0; 8], "sequence and acknowledgment numbers");
        assert_eq!(&p[52..56], &[0x50, 0x10, 0x20, 0x00], "offset, ACK, window");
        assert_eq!(&p[58..60], &[0, 0], "urgent pointer");
        // The one's complement sum over pseudo-header and segment, checksum included.
        let pseudo = checksum::sum16(&from.octets()) + checksum::sum16(&to.octets()) + 20 + 6;
        assert_eq!(checksum::compute(pseudo, &p[40..]), 0, "checksum verifies");
    }
}

//! IPFIX export (RFC 7011) of binding events, with the NAT information elements of RFC 8158:
//! each binding made (natEvent 10, NAT64 BIB create) and removed (11), each new flow
//! refused (12, NAT ports exhausted; 13, quota exceeded), and with port blocks each block
//! allocated (16) and released (17) in place of its bindings, to a collector over UDP
//! (`stateful.ipfix_collector`).
//!
//! One template (ID 256) describes every record. Over UDP a collector may start listening at
//! any time and forgets templates, so the template is sent at start and again every
//! `ipfix_template_refresh_secs` (RFC 7011 section 8.4).

use std::{
    net::{Ipv4Addr, Ipv6Addr, SocketAddr},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use tokio::sync::mpsc;

/// The template's ID (data sets carry it as their set ID); 256 is the first one free.
pub const TEMPLATE_ID: u16 = 256;

/// natEvent values (IANA "NAT Event Type", RFC 8158 section 4.1.1).
pub const NAT64_BIB_CREATE: u8 = 10;
pub const NAT64_BIB_DELETE: u8 = 11;
pub const NAT_PORTS_EXHAUSTED: u8 = 12;
pub const QUOTA_EXCEEDED: u8 = 13;
pub const PORT_BLOCK_ALLOCATION: u8 = 16;
pub const PORT_BLOCK_DEALLOCATION: u8 = 17;

/// natQuotaExceededEvent values (IANA, RFC 8158 section 4.1.2): which limit a refusal hit.
pub const QUOTA_MAX_BIB_ENTRIES: u32 = 2;
pub const QUOTA_MAX_ENTRIES_PER_USER: u32 = 3;

/// The template's fields: (information element, length), in record order.
const FIELDS: [(u16, u16); 10] = [
    (323, 8), // observationTimeMilliseconds
    (230, 1), // natEvent
    (4, 1),   // protocolIdentifier (on the IPv6 side: 6, 17 or 58)
    (27, 16), // sourceIPv6Address
    (7, 2),   // sourceTransportPort (or ICMPv6 identifier)
    (225, 4), // postNATSourceIPv4Address
    (227, 2), // postNAPTSourceTransportPort (or ICMPv4 identifier)
    (466, 4), // natQuotaExceededEvent (0 unless natEvent is 13)
    (361, 2), // portRangeStart (a port block's first port; 0 unless natEvent is 16 or 17)
    (362, 2), // portRangeEnd (its last port)
];

/// Length of one data record.
pub const RECORD_LEN: usize = 42;

/// Records per message: a message stays within 1400 bytes (a path MTU any collector path has),
/// the template included.
const RECORDS_PER_MESSAGE: usize = 30;

/// One NAT event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NatRecord {
    /// When it happened, in milliseconds since the Unix epoch.
    pub time_ms: u64,
    pub event: u8,
    /// IANA protocol number on the IPv6 side.
    pub protocol: u8,
    pub source6: Ipv6Addr,
    pub port6: u16,
    /// The binding's pool4 transport address (unspecified and 0 for a refusal).
    pub source4: Ipv4Addr,
    pub port4: u16,
    pub quota: u32,
    /// A port block's first and last port (natEvent 16 and 17; the client's /64 is
    /// `source6`, with `port6` and `port4` zero).
    pub ports: (u16, u16),
}

impl NatRecord {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.time_ms.to_be_bytes());
        out.push(self.event);
        out.push(self.protocol);
        out.extend_from_slice(&self.source6.octets());
        out.extend_from_slice(&self.port6.to_be_bytes());
        out.extend_from_slice(&self.source4.octets());
        out.extend_from_slice(&self.port4.to_be_bytes());
        out.extend_from_slice(&self.quota.to_be_bytes());
        out.extend_from_slice(&self.ports.0.to_be_bytes());
        out.extend_from_slice(&self.ports.1.to_be_bytes());
    }
}

/// The template set (set ID 2): the template record describing [`NatRecord`].
pub fn template_set() -> Vec<u8> {
    let mut out = Vec::new();
    let len = 4 + 4 + 4 * FIELDS.len();
    out.extend_from_slice(&2u16.to_be_bytes());
    out.extend_from_slice(&(len as u16).to_be_bytes());
    out.extend_from_slice(&TEMPLATE_ID.to_be_bytes());
    out.extend_from_slice(&(FIELDS.len() as u16).to_be_bytes());
    for (ie, l) in FIELDS {
        out.extend_from_slice(&ie.to_be_bytes());
        out.extend_from_slice(&l.to_be_bytes());
    }
    out
}

/// A data set of `records` (set ID [`TEMPLATE_ID`]).
pub fn data_set(records: &[NatRecord]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + records.len() * RECORD_LEN);
    out.extend_from_slice(&TEMPLATE_ID.to_be_bytes());
    out.extend_from_slice(&((4 + records.len() * RECORD_LEN) as u16).to_be_bytes());
    for r in records {
        r.write(&mut out);
    }
    out
}

/// A message (RFC 7011 section 3.1): version 10, length, export time, the sequence number (data
/// records sent before this message, modulo 2^32), the observation domain, then the sets.
pub fn message(export_secs: u32, sequence: u32, domain: u32, sets: &[&[u8]]) -> Vec<u8> {
    let len = 16 + sets.iter().map(|s| s.len()).sum::<usize>();
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&10u16.to_be_bytes());
    out.extend_from_slice(&(len as u16).to_be_bytes());
    out.extend_from_slice(&export_secs.to_be_bytes());
    out.extend_from_slice(&sequence.to_be_bytes());
    out.extend_from_slice(&domain.to_be_bytes());
    for s in sets {
        out.extend_from_slice(s);
    }
    out
}

/// Where and how records are exported (`[stateful]`'s `ipfix_*` settings).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExportSettings {
    pub collector: SocketAddr,
    pub domain: u32,
    pub template_refresh: Duration,
}

/// Records waiting for the exporter; a full queue drops the record (counted by the caller).
pub type RecordSender = mpsc::Sender<NatRecord>;

/// A running exporter: a task that sends what comes through its sender to the collector.
pub struct Exporter {
    pub settings: ExportSettings,
    tx: RecordSender,
    task: tokio::task::JoinHandle<()>,
}

impl Exporter {
    /// Starts it (in the current Tokio runtime).
    pub fn start(settings: ExportSettings) -> std::io::Result<Self> {
        let (tx, task) = spawn(settings)?;
        Ok(Self { settings, tx, task })
    }

    /// A sender of records to it (`binding_log::configure`).
    pub fn sender(&self) -> RecordSender {
        self.tx.clone()
    }

    /// Ends it once it has sent what is queued, waiting at most `within`: every other sender
    /// must be gone (`binding_log::configure(_, None)`), so that its queue closes.
    pub async fn finish(self, within: Duration) {
        drop(self.tx);
        let _ = tokio::time::timeout(within, self.task).await;
    }
}

/// Starts the exporter task: it sends what comes through the returned sender to the
/// collector, and ends when every sender is dropped and the queue is empty.
fn spawn(settings: ExportSettings) -> std::io::Result<(RecordSender, tokio::task::JoinHandle<()>)> {
    let bind: SocketAddr = match settings.collector {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = std::net::UdpSocket::bind(bind)?;
    socket.connect(settings.collector)?;
    socket.set_nonblocking(true)?;
    let socket = tokio::net::UdpSocket::from_std(socket)?;
    let (tx, rx) = mpsc::channel(16_384);
    let task = tokio::spawn(export(socket, settings, rx));
    Ok((tx, task))
}

/// Sends one message. On a connected UDP socket an ICMP error to an earlier message (the
/// collector was not listening yet, or restarted) fails the next send with ECONNREFUSED and
/// that message is not sent: it is sent again once.
async fn send(socket: &tokio::net::UdpSocket, m: &[u8]) -> std::io::Result<usize> {
    match socket.send(m).await {
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => socket.send(m).await,
        r => r,
    }
}

fn now_secs() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32)
}

async fn export(
    socket: tokio::net::UdpSocket,
    settings: ExportSettings,
    mut rx: mpsc::Receiver<NatRecord>,
) {
    let template = template_set();
    let mut sequence: u32 = 0;
    // The template goes out before any data, and then every `template_refresh`. Until one has
    // been sent without an error, each data message carries it too: a collector drops data of
    // a template it does not know (an interval's first tick is not ready at once, so records
    // waiting at start could otherwise overtake the template).
    let mut template_sent = send(
        &socket,
        &message(now_secs(), 0, settings.domain, &[&template]),
    )
    .await
    .is_ok();
    let start = tokio::time::Instant::now() + settings.template_refresh;
    let mut refresh = tokio::time::interval_at(start, settings.template_refresh);
    let mut batch = Vec::with_capacity(RECORDS_PER_MESSAGE);
    loop {
        tokio::select! {
            _ = refresh.tick() => {
                let m = message(now_secs(), sequence, settings.domain, &[&template]);
                match send(&socket, &m).await {
                    Ok(_) => template_sent = true,
                    Err(e) => tracing::debug!(error = %e, collector = %settings.collector, "IPFIX template not sent"),
                }
            }
            got = rx.recv() => {
                let Some(first) = got else { return };
                batch.clear();
                batch.push(first);
                while batch.len() < RECORDS_PER_MESSAGE {
                    match rx.try_recv() {
                        Ok(r) => batch.push(r),
                        Err(_) => break,
                    }
                }
                let data = data_set(&batch);
                let sets: &[&[u8]] = if template_sent {
                    &[&data]
                } else {
                    &[&template, &data]
                };
                let m = message(now_secs(), sequence, settings.domain, sets);
                sequence = sequence.wrapping_add(batch.len() as u32);
                match send(&socket, &m).await {
                    Ok(_) => {
                        template_sent = true;
                        tracing::debug!(records = batch.len(), sequence, "IPFIX data sent");
                    }
                    // A collector that is down answers with ICMP port unreachable: the next
                    // send reports it. UDP export loses what it cannot deliver (RFC 7011
                    // section 10.3); the sequence numbers tell the collector how much.
                    Err(e) => tracing::debug!(error = %e, collector = %settings.collector, "IPFIX message not sent"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_describes_a_record_of_its_own_length() {
        let t = template_set();
        assert_eq!(u16::from_be_bytes([t[0], t[1]]), 2, "template set ID");
        assert_eq!(u16::from_be_bytes([t[2], t[3]]) as usize, t.len());
        assert_eq!(u16::from_be_bytes([t[4], t[5]]), TEMPLATE_ID);
        let fields = u16::from_be_bytes([t[6], t[7]]) as usize;
        let total: usize = (0..fields)
            .map(|i| u16::from_be_bytes([t[10 + 4 * i], t[11 + 4 * i]]) as usize)
            .sum();
        assert_eq!(total, RECORD_LEN);
    }

    #[test]
    fn a_message_has_the_rfc_7011_header_and_record_bytes() {
        let r = NatRecord {
            time_ms: 0x0102_0304_0506_0708,
            event: NAT64_BIB_CREATE,
            protocol: 17,
            source6: "2001:db8::1".parse().unwrap(),
            port6: 40000,
            source4: Ipv4Addr::new(203, 0, 113, 200),
            port4: 20002,
            quota: 0,
            ports: (20000, 20127),
        };
        let data = data_set(&[r, r]);
        assert_eq!(data.len(), 4 + 2 * RECORD_LEN);
        let m = message(1_700_000_000, 7, 1, &[&data]);
        assert_eq!(&m[..2], &[0, 10], "version 10");
        assert_eq!(u16::from_be_bytes([m[2], m[3]]) as usize, m.len());
        assert_eq!(u32::from_be_bytes([m[4], m[5], m[6], m[7]]), 1_700_000_000);
        assert_eq!(u32::from_be_bytes([m[8], m[9], m[10], m[11]]), 7);
        assert_eq!(u32::from_be_bytes([m[12], m[13], m[14], m[15]]), 1);
        let rec = &m[20..20 + RECORD_LEN];
        assert_eq!(&rec[..8], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(rec[8], 10);
        assert_eq!(rec[9], 17);
        assert_eq!(&rec[10..26], &r.source6.octets());
        assert_eq!(&rec[26..28], &40000u16.to_be_bytes());
        assert_eq!(&rec[28..32], &[203, 0, 113, 200]);
        assert_eq!(&rec[32..34], &20002u16.to_be_bytes());
        assert_eq!(&rec[34..38], &[0, 0, 0, 0]);
        assert_eq!(&rec[38..40], &20000u16.to_be_bytes());
        assert_eq!(&rec[40..42], &20127u16.to_be_bytes());
    }
}

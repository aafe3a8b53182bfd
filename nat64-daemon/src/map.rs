//! `nat64d map`: under deterministic mapping (RFC 7422, `[stateful.deterministic]`), which
//! client holds a pool4 transport address, and which address and port blocks a client has,
//! answered from the configuration alone: no daemon, no log, the same answer on every node
//! that shares the configuration and after any restart.

use std::net::{Ipv4Addr, Ipv6Addr};

use nat64_common::deterministic::Deterministic;

use crate::config::{Protocol, Stateful};

/// Why `nat64d map` has no answer.
#[derive(Debug, thiserror::Error)]
pub enum MapError {
    #[error(
        "the configuration has no [stateful.deterministic]: bindings are random, so only the binding log (log_bindings) or IPFIX records tie a pool4 address to a client"
    )]
    NotDeterministic,
    #[error("{0} is not in pool4")]
    NotInPool4(Ipv4Addr),
    #[error("{protocol} port {port} of {addr} is in no client's block")]
    NoBlock {
        addr: Ipv4Addr,
        port: u16,
        protocol: &'static str,
    },
    #[error("{0} is not in the clients' prefix of [stateful.deterministic]")]
    NotAClient(Ipv6Addr),
}

fn map(st: &Stateful) -> Result<Deterministic, MapError> {
    st.deterministic_map().ok_or(MapError::NotDeterministic)
}

/// The index of `addr` over pool4's addresses in order.
fn pool4_index(st: &Stateful, addr: Ipv4Addr) -> Option<u32> {
    let mut offset = 0u32;
    for p in &st.pool4 {
        if p.contains(&addr) {
            return Some(offset + (u32::from(addr) - u32::from(p.network())));
        }
        offset += 1u32 << (32 - p.prefix_len());
    }
    None
}

/// The pool4 address at `index`.
fn pool4_address(st: &Stateful, mut index: u32) -> Option<Ipv4Addr> {
    for p in &st.pool4 {
        let n = 1u32 << (32 - p.prefix_len());
        if index < n {
            return Some(Ipv4Addr::from(u32::from(p.network()) + index));
        }
        index -= n;
    }
    None
}

fn proto_index(p: Protocol) -> usize {
    match p {
        Protocol::Tcp => 0,
        Protocol::Udp => 1,
        Protocol::Icmp => 2,
    }
}

/// The client holding `port` (or ICMP identifier) of pool4 address `addr` for `protocol`:
/// its prefix, and that protocol's block.
pub fn client_of(
    st: &Stateful,
    addr: Ipv4Addr,
    port: u16,
    protocol: Protocol,
) -> Result<(Ipv6Addr, u8, (u16, u16)), MapError> {
    let d = map(st)?;
    let a = pool4_index(st, addr).ok_or(MapError::NotInPool4(addr))?;
    let i = proto_index(protocol);
    let lo = st.range(i).0;
    let index = d.client_of(a, port, i, lo).ok_or(MapError::NoBlock {
        addr,
        port,
        protocol: protocol.name(),
    })?;
    let (_, blo, bhi) = d.block_of(index, i, lo);
    Ok((d.client_prefix(index).into(), d.client_len, (blo, bhi)))
}

/// A client's blocks: its prefix, its pool4 address, and its port (identifier) range for
/// each protocol (TCP, UDP, ICMP).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Blocks {
    pub prefix: Ipv6Addr,
    pub prefix_len: u8,
    pub addr: Ipv4Addr,
    pub ports: [(u16, u16); 3],
}

/// The blocks of the client `client` belongs to.
pub fn blocks_of(st: &Stateful, client: Ipv6Addr) -> Result<Blocks, MapError> {
    let d = map(st)?;
    let index = d
        .client_index(&client.octets())
        .ok_or(MapError::NotAClient(client))?;
    let mut blocks = [(0, 0); 3];
    let mut addr = Ipv4Addr::UNSPECIFIED;
    for (i, b) in blocks.iter_mut().enumerate() {
        let (a, lo, hi) = d.block_of(index, i, st.range(i).0);
        addr = pool4_address(st, a).ok_or(MapError::NotAClient(client))?;
        *b = (lo, hi);
    }
    Ok(Blocks {
        prefix: d.client_prefix(index).into(),
        prefix_len: d.client_len,
        addr,
        ports: blocks,
    })
}

//! The translator link over netlink: the veth pair the daemon creates and owns, and the routes
//! that send what the translator stands for into it.
//!
//! ```text
//!  kernel routes pool6 and EAM IPv4 ──> <name> ══ veth ══ <name>-dp  (nat64_link: translate,
//!  (forward, fragment, segment)         nat64_return                  XDP_TX back into <name>)
//! ```
//!
//! The kernel side (`<name>`) has ARP and neighbour discovery off: its "neighbours" are the
//! far end, which answers nothing, so every frame goes out addressed to the link's own MAC and
//! comes back the same way. The far end (`<name>-dp`) has no addresses and IPv6 switched off:
//! the dataplane handles every frame it receives before the stack would.

use std::net::{Ipv4Addr, Ipv6Addr};

use futures_util::TryStreamExt as _;
use ipnet::{Ipv4Net, Ipv6Net};
use rtnetlink::{
    Handle, LinkUnspec, LinkVeth, RouteMessageBuilder,
    packet_route::{
        link::LinkAttribute,
        route::{RouteAddress, RouteAttribute, RouteMetric, RouteProtocol, RouteScope, RouteType},
    },
};

/// Written into the kernel side's alias: how a restarted daemon recognises a link it left
/// behind (after a crash) and may remove, as opposed to someone else's interface.
pub const ALIAS: &str = "nat64d translator link";

/// The routing protocol number nat64d's routes carry (`ip route show proto 64`), so that an
/// operator, and the daemon, can tell them from everyone else's. 64 is unassigned in the
/// kernel's rtnetlink protocol list.
pub const ROUTE_PROTOCOL: u8 = 64;

/// An IPv4 fragment grows by this much once translated: 20 bytes of header and the 8-byte
/// Fragment header (RFC 7915 section 4.1). The link's IPv4 routes carry an MTU this much below
/// the link's, so that the kernel's fragments fit the IPv6 side once translated.
pub const IPV4_FRAGMENT_GROWTH: u32 = 28;

/// What can go wrong while setting the link up or taking it down.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The netlink socket could not be opened.
    #[error("opening a netlink socket: {0}")]
    Socket(#[source] std::io::Error),
    /// A netlink request failed; `what` says which.
    #[error("{what}: {source}")]
    Netlink {
        what: String,
        #[source]
        source: rtnetlink::Error,
    },
    /// An interface of that name exists and is not one this daemon made.
    #[error(
        "interface {0:?} exists and is not a translator link (its alias is not {ALIAS:?}); rename it or set translator_link to another name"
    )]
    Taken(String),
    /// A sysctl or a device setting could not be written.
    #[error("{path}: {source}")]
    Sysctl {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

fn nl(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> LinkError {
    let what = what.into();
    move |source| LinkError::Netlink { what, source }
}

/// A netlink connection whose driver runs on the current Tokio runtime.
pub fn connect() -> Result<Handle, LinkError> {
    let (conn, handle, _) = rtnetlink::new_connection().map_err(LinkError::Socket)?;
    tokio::spawn(conn);
    Ok(handle)
}

/// The link as created: both names and interface indices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TranslatorLink {
    pub name: String,
    pub index: u32,
    pub peer: String,
    pub peer_index: u32,
}

/// What [`find`] learns of an interface.
struct Found {
    index: u32,
    alias: Option<String>,
    /// IFLA_LINK: for a veth, its peer's index.
    link: Option<u32>,
}

/// Looks an interface up by name, or `None` if there is none.
async fn find(handle: &Handle, name: &str) -> Result<Option<Found>, LinkError> {
    let mut links = handle.link().get().match_name(name).execute();
    match links.try_next().await {
        Ok(Some(msg)) => {
            let alias = msg.attributes.iter().find_map(|a| match a {
                LinkAttribute::IfAlias(s) => Some(s.clone()),
                _ => None,
            });
            let link = msg.attributes.iter().find_map(|a| match a {
                LinkAttribute::Link(i) => Some(*i),
                _ => None,
            });
            Ok(Some(Found {
                index: msg.header.index,
                alias,
                link,
            }))
        }
        Ok(None) => Ok(None),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(None),
        Err(e) => Err(nl(format!("looking up interface {name:?}"))(e)),
    }
}

/// Creates the pair `name` / `peer` with `mtu`, both up. An intact pair left by an earlier run
/// (recognised by [`ALIAS`], still paired) is taken over as it is, so that its pinned
/// attachments and routes go on working; a broken one is removed first. Any other interface of
/// either name is an error.
pub async fn create(
    handle: &Handle,
    name: &str,
    peer: &str,
    mtu: u32,
) -> Result<TranslatorLink, LinkError> {
    if let (Some(k), Some(p)) = (find(handle, name).await?, find(handle, peer).await?)
        && k.alias.as_deref() == Some(ALIAS)
        && p.link == Some(k.index)
    {
        tracing::info!(
            link = name,
            "taking over the translator link an earlier run left"
        );
        let link = TranslatorLink {
            name: name.to_string(),
            index: k.index,
            peer: peer.to_string(),
            peer_index: p.index,
        };
        finish(handle, &link, mtu).await?;
        return Ok(link);
    }
    // The kernel side first: removing a pair of ours removes its far end too.
    for n in [name, peer] {
        match find(handle, n).await? {
            None => {}
            Some(Found {
                index,
                alias: Some(alias),
                ..
            }) if alias == ALIAS => {
                tracing::warn!(interface = n, "removing a translator link left behind");
                remove(handle, index).await?;
            }
            Some(_) => return Err(LinkError::Taken(n.to_string())),
        }
    }
    handle
        .link()
        .add(
            LinkVeth::new(name, peer)
                .mtu(mtu)
                .arp(false)
                .alias(ALIAS)
                .build(),
        )
        .execute()
        .await
        .map_err(nl(format!("creating veth pair {name:?}/{peer:?}")))?;
    let index = find(handle, name)
        .await?
        .ok_or_else(|| LinkError::Taken(name.to_string()))?
        .index;
    let peer_index = find(handle, peer)
        .await?
        .ok_or_else(|| LinkError::Taken(peer.to_string()))?
        .index;
    let link = TranslatorLink {
        name: name.to_string(),
        index,
        peer: peer.to_string(),
        peer_index,
    };
    if let Err(e) = finish(handle, &link, mtu).await {
        let _ = remove(handle, index).await;
        return Err(e);
    }
    Ok(link)
}

async fn finish(handle: &Handle, link: &TranslatorLink, mtu: u32) -> Result<(), LinkError> {
    // Packets the far end translates leave it by XDP_TX as bare frames: whatever the kernel
    // knew about a partial checksum is gone by the time they come back. So the kernel side
    // transmits only complete checksums, computed in software before the packet enters the
    // link (GSO segments included).
    crate::sys::set_tx_checksum(&link.name, false).map_err(|source| LinkError::Sysctl {
        path: format!("ethtool -K {} tx off", link.name),
        source,
    })?;
    // The far end needs no IPv6 of its own (no link-local address, no router solicitations):
    // every frame it receives is the dataplane's.
    // Only tidiness: a far end with a link-local address and router solicitations works the
    // same, so a read-only /proc/sys is no reason to stop.
    let path = crate::sys::sysctl_path(&format!("net.ipv6.conf.{}.disable_ipv6", link.peer));
    if path.exists()
        && let Err(e) = std::fs::write(&path, "1")
    {
        tracing::warn!(path = %path.display(), error = %e, "cannot switch IPv6 off on the translator link's far end; it keeps a link-local address (harmless)");
    }
    // RFC 6791: an ICMPv6 error from a router with no IPv4 mapping comes back from the far end
    // with one of this node's own addresses as its source (when `pool6791` is unset or is
    // one). The kernel drops such a packet as a martian unless the interface accepts local
    // sources, and strict reverse-path filtering would drop it too (the node's address is not
    // routed into the link). The link is the daemon's own, so these settings go with it.
    for (key, value) in [("accept_local", "1"), ("rp_filter", "0")] {
        let path = crate::sys::sysctl_path(&format!("net.ipv4.conf.{}.{key}", link.name));
        if let Err(e) = std::fs::write(&path, value) {
            tracing::warn!(path = %path.display(), error = %e, "cannot write {value}: ICMP errors translated with the node's own address as their RFC 6791 source will be dropped as martians; set pool6791 to an address the node does not hold");
        }
    }
    handle
        .link()
        .set(
            LinkUnspec::new_with_index(link.peer_index)
                .mtu(mtu)
                .arp(false)
                .up()
                .build(),
        )
        .execute()
        .await
        .map_err(nl(format!("setting {:?} up", link.peer)))?;
    handle
        .link()
        // The alias given with RTM_NEWLINK is not kept for a veth: set it here.
        .set(
            LinkUnspec::new_with_index(link.index)
                .alias(ALIAS)
                .up()
                .build(),
        )
        .execute()
        .await
        .map_err(nl(format!("setting {:?} up", link.name)))?;
    Ok(())
}

/// The metric of a route into the link for a prefix the node has an address in (see
/// `add_routes`).
const YIELD_METRIC: u32 = 1024;

/// The route of IPv6 prefix `p` into the link, as the daemon adds it and deletes it. One
/// builder for both: the kernel deletes only a route of the protocol named, so the two must
/// agree (the builder's default, "static", is not ours).
fn route6(link: &TranslatorLink, p: &Ipv6Net) -> rtnetlink::packet_route::route::RouteMessage {
    RouteMessageBuilder::<Ipv6Addr>::new()
        .destination_prefix(p.network(), p.prefix_len())
        .output_interface(link.index)
        .protocol(RouteProtocol::Other(ROUTE_PROTOCOL))
        .build()
}

/// The route of IPv4 prefix `p` into the link (see [`route6`]).
fn route4(link: &TranslatorLink, p: &Ipv4Net) -> rtnetlink::packet_route::route::RouteMessage {
    RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(p.network(), p.prefix_len())
        .output_interface(link.index)
        .scope(RouteScope::Link)
        .protocol(RouteProtocol::Other(ROUTE_PROTOCOL))
        .build()
}

/// Routes `pool6` (IPv6) and the `v4` prefixes (IPv4, each with its route MTU) into the link,
/// replacing any route to the same prefixes: the translator answers for them.
pub async fn add_routes(
    handle: &Handle,
    link: &TranslatorLink,
    v6: &[Ipv6Net],
    v4: &[(Ipv4Net, u32)],
) -> Result<(), LinkError> {
    // Every prefix is tried, whatever happened to the one before; the first failure is
    // reported.
    let mut first = Ok(());
    for p in v6 {
        let r = handle
            .route()
            .add(route6(link, p))
            .replace()
            .execute()
            .await
            .map_err(nl(format!("adding route {p} dev {}", link.name)));
        if first.is_ok() {
            first = r;
        }
    }
    // A prefix holding one of the node's own addresses is a subnet the node is on: its
    // connected route stays first (ours, behind it at YIELD_METRIC, would otherwise replace
    // it and cut the node off its neighbours). The dataplane keeps those addresses the
    // node's (`EAM_F_LOCAL`), and translates what arrives for the rest before routing.
    let own = crate::sys::ipv4_addrs();
    for &(ref p, mtu4) in v4 {
        let mut msg = route4(link, p);
        msg.attributes
            .push(RouteAttribute::Metrics(vec![RouteMetric::Mtu(mtu4)]));
        if own.iter().any(|(_, a)| p.contains(a)) {
            msg.attributes.push(RouteAttribute::Priority(YIELD_METRIC));
        }
        let r = handle
            .route()
            .add(msg)
            .replace()
            .execute()
            .await
            .map_err(nl(format!("adding route {p} dev {} mtu {mtu4}", link.name)));
        if first.is_ok() {
            first = r;
        }
    }
    first
}

/// The narrowest IPv6 route out of this node (`Config::ipv4_route_mtu_under`): over the main
/// table's unicast IPv6 routes, leaving out link-local and multicast destinations, loopback
/// and the translator link itself, the route's own MTU where it has one, else its interface's;
/// 0 when there is none of 1280 or more. Routes, not interfaces: a node's IPv4-only tunnels
/// and overlays (a CNI's VXLAN device, narrower than its uplink) carry no IPv6 route and must
/// not narrow what the link's routes let through.
pub async fn ipv6_route_floor(handle: &Handle, link: &TranslatorLink) -> Result<u16, LinkError> {
    const RT_TABLE_MAIN: u32 = 254;
    let mut routes = handle
        .route()
        .get(RouteMessageBuilder::<Ipv6Addr>::new().build())
        .execute();
    let mut floor = u32::MAX;
    while let Some(r) = routes
        .try_next()
        .await
        .map_err(nl("listing the IPv6 routes".to_string()))?
    {
        let table = r
            .attributes
            .iter()
            .find_map(|a| match a {
                RouteAttribute::Table(t) => Some(*t),
                _ => None,
            })
            .unwrap_or(u32::from(r.header.table));
        if table != RT_TABLE_MAIN || r.header.kind != RouteType::Unicast {
            continue;
        }
        let dst = r
            .attributes
            .iter()
            .find_map(|a| match a {
                RouteAttribute::Destination(RouteAddress::Inet6(d)) => Some(*d),
                _ => None,
            })
            .unwrap_or(Ipv6Addr::UNSPECIFIED);
        // Link-local (fe80::/10), multicast, loopback: never a translated packet's way.
        if dst.segments()[0] & 0xffc0 == 0xfe80 || dst.is_multicast() || dst.is_loopback() {
            continue;
        }
        if let Some(mtu) = route_mtu(&r, link)
            && mtu >= 1280
        {
            floor = floor.min(mtu);
        }
    }
    Ok(if floor == u32::MAX {
        0
    } else {
        floor.min(u32::from(u16::MAX)) as u16
    })
}

/// The MTU of the IPv6 route to `dst` (`ip -6 route get`): the route's own MTU where it has
/// one, else its interface's; `None` when the route leads into the translator link (or
/// nowhere, or to loopback).
pub async fn ipv6_route_mtu_to(
    handle: &Handle,
    link: &TranslatorLink,
    dst: Ipv6Addr,
) -> Result<Option<u32>, LinkError> {
    let mut answer = handle
        .route()
        .get(
            RouteMessageBuilder::<Ipv6Addr>::new()
                .destination_prefix(dst, 128)
                .build(),
        )
        .execute();
    let r = answer
        .try_next()
        .await
        .map_err(nl(format!("looking up the IPv6 route to {dst}")))?;
    Ok(r.and_then(|r| route_mtu(&r, link)))
}

/// The MTU a route carries packets at: its own where it has one, else its interface's;
/// `None` for a route without one interface (multipath, a nexthop object, unreachable), into
/// the translator link, or to loopback.
fn route_mtu(
    r: &rtnetlink::packet_route::route::RouteMessage,
    link: &TranslatorLink,
) -> Option<u32> {
    let oif = r.attributes.iter().find_map(|a| match a {
        RouteAttribute::Oif(i) => Some(*i),
        _ => None,
    })?;
    if oif == link.index || oif == link.peer_index {
        return None;
    }
    let own = r.attributes.iter().find_map(|a| match a {
        RouteAttribute::Metrics(m) => m.iter().find_map(|m| match m {
            RouteMetric::Mtu(v) if *v > 0 => Some(*v),
            _ => None,
        }),
        _ => None,
    });
    match own {
        Some(m) => Some(m),
        None => crate::sys::interface_name(oif)
            .filter(|name| name != "lo")
            .and_then(|name| crate::sys::mtu(&name).ok()),
    }
}

/// Deletes the translator link `name` if it is one of ours (by [`ALIAS`]), with its routes;
/// says whether there was one.
pub async fn remove_ours(handle: &Handle, name: &str) -> Result<bool, LinkError> {
    match find(handle, name).await? {
        Some(f) if f.alias.as_deref() == Some(ALIAS) => {
            remove(handle, f.index).await?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Deletes the pair by the index of either end; its routes go with it.
pub async fn remove(handle: &Handle, index: u32) -> Result<(), LinkError> {
    handle
        .link()
        .del(index)
        .execute()
        .await
        .map_err(nl(format!("deleting interface {index}")))
}

/// Removes routes this daemon added to the link for prefixes it no longer translates.
pub async fn remove_routes(
    handle: &Handle,
    link: &TranslatorLink,
    v6: &[Ipv6Net],
    v4: &[Ipv4Net],
) -> Result<(), LinkError> {
    let msgs = v6
        .iter()
        .map(|p| (p.to_string(), route6(link, p)))
        .chain(v4.iter().map(|p| (p.to_string(), route4(link, p))));
    // Every route is tried, whatever happened to the one before (a route someone else
    // deleted already is no failure): one stale route left routed into the link is traffic
    // that nothing translates.
    let mut first = Ok(());
    for (p, msg) in msgs {
        let r = handle.route().del(msg).execute().await;
        if let Err(rtnetlink::Error::NetlinkError(e)) = &r
            && e.raw_code() == -libc::ESRCH
        {
            continue;
        }
        if first.is_ok() {
            first = r.map_err(nl(format!("deleting route {p} dev {}", link.name)));
        }
    }
    first
}

/// Sets `net.ipv4.conf.IFACE.accept_local` to 1 on each of `interfaces` where it is not, and
/// returns what it changed (the sysctl's path and its old value), for [`restore_sysctls`].
/// Without a translator link, an ICMPv6 error from a router with no IPv4 mapping is
/// translated on the interface it arrives on, with one of this node's own addresses as its
/// RFC 6791 source: the kernel drops it as a martian unless that interface accepts local
/// sources.
pub fn accept_local(interfaces: &[&str]) -> Result<Vec<(String, String)>, LinkError> {
    let mut changed = Vec::new();
    for iface in interfaces {
        let path = crate::sys::sysctl_path(&format!("net.ipv4.conf.{iface}.accept_local"))
            .display()
            .to_string();
        let err = |source| LinkError::Sysctl {
            path: path.clone(),
            source,
        };
        let now = std::fs::read_to_string(&path).map_err(err)?;
        if now.trim() != "1" {
            std::fs::write(&path, "1").map_err(err)?;
            changed.push((path, now.trim().to_string()));
        }
    }
    Ok(changed)
}

/// Writes back what [`accept_local`] changed.
pub fn restore_sysctls(changed: &[(String, String)]) {
    for (path, old) in changed {
        if let Err(e) = std::fs::write(path, old) {
            tracing::warn!(path, error = %e, "cannot restore {old}");
        }
    }
}

/// Sets a forwarding sysctl to 1 if it is not, and says whether it changed it.
pub fn enable_forwarding(key: &str) -> Result<bool, LinkError> {
    let path = crate::sys::sysctl_path(key).display().to_string();
    let now = std::fs::read_to_string(&path).map_err(|source| LinkError::Sysctl {
        path: path.clone(),
        source,
    })?;
    if now.trim() == "1" {
        return Ok(false);
    }
    std::fs::write(&path, "1").map_err(|source| LinkError::Sysctl {
        path: path.clone(),
        source,
    })?;
    Ok(true)
}

/// Follows link and route events in the background; a unit arrives on the returned channel
/// for each one that may have undone something of the daemon's.
pub fn follow_events() -> std::io::Result<tokio::sync::mpsc::Receiver<()>> {
    use futures_util::StreamExt as _;
    let (conn, _, mut events) = rtnetlink::new_multicast_connection(&[
        rtnetlink::MulticastGroup::Link,
        rtnetlink::MulticastGroup::Ipv4Route,
        rtnetlink::MulticastGroup::Ipv6Route,
    ])?;
    tokio::spawn(conn);
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        while let Some((msg, _)) = events.next().await {
            // A full channel already has a re-sync coming.
            if is_disruptive(&msg) && tx.try_send(()).is_err() && tx.is_closed() {
                break;
            }
        }
    });
    Ok(rx)
}

/// Whether an event may have undone something of the daemon's: a link appearing, changing or
/// going, or a route going; or changed what the link's IPv4 routes' MTU follows: an IPv6
/// route of someone else's appearing (`ipv6_route_floor`). (The daemon's own new routes are
/// its re-sync, and new IPv4 routes harmless.)
fn is_disruptive(
    msg: &rtnetlink::packet_core::NetlinkMessage<rtnetlink::packet_route::RouteNetlinkMessage>,
) -> bool {
    use rtnetlink::{
        packet_core::NetlinkPayload,
        packet_route::{AddressFamily, RouteNetlinkMessage as M},
    };
    match &msg.payload {
        NetlinkPayload::InnerMessage(M::NewLink(_) | M::DelLink(_) | M::DelRoute(_)) => true,
        NetlinkPayload::InnerMessage(M::NewRoute(r)) => {
            r.header.address_family == AddressFamily::Inet6
                && r.header.protocol != RouteProtocol::Other(ROUTE_PROTOCOL)
        }
        _ => false,
    }
}

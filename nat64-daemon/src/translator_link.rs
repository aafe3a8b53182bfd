//! Bringing the translator link up: at start, and again when a reload or a netlink event finds
//! it gone.

use anyhow::Context as _;
use nat64_daemon::{Config, Dataplane};
use tracing::{debug, info, warn};

/// Creates the translator link, attaches its programs and routes pool6 and the EAM IPv4
/// prefixes into it. On failure nothing of it is left behind.
pub(crate) async fn set_up_link(
    dp: &mut Dataplane,
    nl: &rtnetlink::Handle,
    cfg: &Config,
    name: &str,
    peer: &str,
) -> anyhow::Result<nat64_daemon::link::TranslatorLink> {
    use nat64_daemon::link;
    let mtu = cfg.link_mtu();
    let l = link::create(nl, name, peer, mtu)
        .await
        .context("creating the translator link")?;
    let (v6, _) = cfg.link_routes();
    let v4 = ipv4_routes(nl, &l, cfg).await;
    let mtu4 = v4
        .iter()
        .map(|(_, m)| *m)
        .min()
        .unwrap_or(cfg.ipv4_route_mtu());
    let r = match dp.attach_link(&l) {
        Ok(_) => link::add_routes(nl, &l, &v6, &v4)
            .await
            .context("routing into the translator link"),
        Err(e) => Err(anyhow::Error::from(e).context("attaching to the translator link")),
    };
    // The configuration again, now with the link's ifindex and MAC (`Config::link_ifindex`).
    let r = r.and_then(|()| {
        dp.apply(cfg)
            .map_err(|e| anyhow::Error::from(e).context("writing the translator link's settings"))
    });
    if let Err(e) = r {
        // The link's own attachments only: at a re-sync the interfaces go on translating.
        dp.forget(&l.name);
        dp.forget(&l.peer);
        let _ = link::remove(nl, l.index).await;
        return Err(e);
    }
    info!(
        link = %l.name,
        far_end = %l.peer,
        mtu,
        ipv4_route_mtu_min = mtu4,
        routes = v6.len() + v4.len(),
        "translator link up"
    );
    Ok(l)
}

/// The translator link's IPv4 routes for `cfg` on this node as it is now, each with its MTU:
/// within `ipv6_mtu` and the IPv6 route its packets take once translated
/// (`Config::ipv4_route_mtu_under`), so that what the kernel fragments on its way into the
/// link fits that route (RFC 7915 section 4.1). An EAM prefix and a `pool6_ipv4` prefix have
/// one IPv6 counterpart, whose route is looked up (`link::ipv6_route_mtu_to`); pool4 stands
/// for every client, so it takes the narrowest IPv6 route (`link::ipv6_route_floor`), as does
/// a counterpart whose route leads back into the link (under pool6, the stateless IVI case).
/// Asked again at every resync that follows an event.
pub(crate) async fn ipv4_routes(
    nl: &rtnetlink::Handle,
    l: &nat64_daemon::link::TranslatorLink,
    cfg: &Config,
) -> Vec<(ipnet::Ipv4Net, u32)> {
    use nat64_daemon::link::{ipv6_route_floor, ipv6_route_mtu_to};
    let mut floor = None;
    let mut out = Vec::new();
    let df_alias = cfg
        .shared_alias()
        .map(|a| ipnet::Ipv4Net::from(Config::df_alias(a)));
    for p in cfg.link_routes().1 {
        // What goes under the second alias has DF: the link's own MTU, the kernel only
        // segments it (the dataplane's `link::to_alias`).
        if Some(p) == df_alias {
            out.push((p, cfg.link_mtu()));
            continue;
        }
        let counterpart = match cfg.eam.iter().find(|e| e.ipv4 == p) {
            Some(e) => Some(e.ipv6.network()),
            None if cfg.pool6_ipv4.contains(&p) => cfg.pool6.0.and_then(|p6| {
                nat64_common::addr::embed(
                    &p6.network().octets(),
                    p6.prefix_len(),
                    p.network().octets(),
                )
                .map(std::net::Ipv6Addr::from)
            }),
            None => None,
        };
        // The counterpart's route; where it has none of its own (it leads into the link, as
        // pool6 does, or nowhere), or for pool4, the narrowest IPv6 route.
        let own = match counterpart {
            Some(a) => match ipv6_route_mtu_to(nl, l, a).await {
                Ok(m) => m.map(|m| m.min(u32::from(u16::MAX)) as u16),
                // No route to it (yet): not worth a warning at every resync, and the narrowest
                // IPv6 route is a safe stand-in.
                Err(e) => {
                    debug!(error = %e, prefix = %p, "cannot look up the IPv6 route of an IPv4 prefix: the narrowest IPv6 route stands in");
                    None
                }
            },
            None => None,
        };
        let mtu6 = match (own, floor) {
            (Some(m), _) => m,
            (None, Some(f)) => f,
            (None, None) => {
                let f = ipv6_route_floor(nl, l).await.unwrap_or_else(|e| {
                    warn!(error = %e, "cannot list the IPv6 routes: the translator link's IPv4 routes take ipv6_mtu's MTU");
                    0
                });
                floor = Some(f);
                f
            }
        };
        out.push((p, cfg.ipv4_route_mtu_under(mtu6)));
    }
    out
}

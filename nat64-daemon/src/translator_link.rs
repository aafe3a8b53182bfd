//! Bringing the translator link up: at start, and again when a reload or a netlink event finds
//! it gone.

use anyhow::Context as _;
use nat64_daemon::{Config, Dataplane};
use tracing::{info, warn};

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
    let (v6, v4) = cfg.link_routes();
    let mtu4 = ipv4_route_mtu(nl, &l, cfg).await;
    let r = match dp.attach_link(&l) {
        Ok(_) => link::add_routes(nl, &l, &v6, &v4, mtu4)
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
        dp.detach_all();
        let _ = link::remove(nl, l.index).await;
        return Err(e);
    }
    info!(
        link = %l.name,
        far_end = %l.peer,
        mtu,
        ipv4_route_mtu = mtu4,
        routes = v6.len() + v4.len(),
        "translator link up"
    );
    Ok(l)
}

/// The MTU of the translator link's IPv4 routes for `cfg` on this node as it is now: within
/// `ipv6_mtu` and the narrowest IPv6 route out (`Config::ipv4_route_mtu_under`,
/// `link::ipv6_route_floor`), so that what the kernel fragments on its way into the link fits
/// the IPv6 route it takes once translated. Asked again at every resync, which follows every
/// link and route event.
pub(crate) async fn ipv4_route_mtu(
    nl: &rtnetlink::Handle,
    l: &nat64_daemon::link::TranslatorLink,
    cfg: &Config,
) -> u32 {
    match nat64_daemon::link::ipv6_route_floor(nl, l).await {
        Ok(floor) => cfg.ipv4_route_mtu_under(floor),
        Err(e) => {
            warn!(error = %e, "cannot list the IPv6 routes: the translator link's IPv4 routes take ipv6_mtu's MTU");
            cfg.ipv4_route_mtu()
        }
    }
}

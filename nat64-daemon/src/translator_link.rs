//! Bringing the translator link up: at start, and again when a reload or a netlink event finds
//! it gone.

use anyhow::Context as _;
use nat64_daemon::{Config, Dataplane};
use tracing::info;

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
    let mtu4 = dp.ipv4_route_mtu(cfg);
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

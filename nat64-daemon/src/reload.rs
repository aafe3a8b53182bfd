//! Reloading the configuration (SIGHUP, a changed file) and re-syncing what the daemon set up
//! when the system undoes it (a deleted translator link, an interface that comes back, removed
//! routes).

use nat64_daemon::{Config, Dataplane};
use tracing::{error, info, warn};

use crate::run_args::RunArgs;

/// The trigger of the periodic resync, which reuses what an event's resync worked out.
pub(crate) const PERIODIC: &str = "periodic";

/// What a reload needs besides the dataplane and the running configuration.
pub(crate) struct Reload<'a> {
    pub(crate) args: &'a RunArgs,
    pub(crate) nl: &'a rtnetlink::Handle,
    /// The translator link as it is now (re-created if someone deleted it).
    pub(crate) link: Option<nat64_daemon::link::TranslatorLink>,
    /// Configured interfaces found gone, waiting to come back (said once).
    pub(crate) gone: std::collections::BTreeSet<String>,
    /// The link's IPv4 routes with their MTUs (`translator_link::ipv4_routes`), as last
    /// worked out: that asks the IPv6 routing table, so the periodic resync reuses them, and a
    /// resync that follows an event, or a reload, works them out again.
    pub(crate) ipv4_routes: std::cell::RefCell<Option<Vec<(ipnet::Ipv4Net, u32)>>>,
    /// The last reload found a configured interface missing: it is tried again when a link
    /// event settles (an interface that flapped as a ConfigMap changed), not dropped.
    pub(crate) waiting: std::cell::Cell<bool>,
}

impl Reload<'_> {
    /// Re-reads the configuration (file and flags) and applies it, or keeps the running one
    /// and says why. Established sessions live in the binding tables, which a reload does not
    /// touch.
    pub(crate) async fn run(&self, dp: &mut Dataplane, cur: &mut Config, trigger: &str) {
        self.waiting.set(false);
        let new = match crate::run_args::configured(self.args) {
            Ok(c) => c,
            Err(e) => {
                error!(trigger, error = %format!("{e:#}"), "reload refused; the running configuration is kept");
                return;
            }
        };
        if let Err(e) = new.check_interfaces_exist() {
            warn!(trigger, error = %e, "reload waits for the interface: the running configuration is kept, and the reload tried again when links change");
            self.waiting.set(true);
            return;
        }
        if let Err(e) = new.check_own_addresses() {
            error!(trigger, error = %e, "reload refused; the running configuration is kept");
            return;
        }
        if new == *cur {
            info!(trigger, "configuration unchanged");
            return;
        }
        if let Err(e) = cur.check_reload(&new) {
            error!(trigger, error = %e, "reload refused; the running configuration is kept");
            return;
        }
        // With pinned state, a new copy of the programs with the new configuration is swapped
        // in whole (no packet sees half of it); without, the maps are written in place (EAM
        // entries added before the configuration slot changes, removed after it).
        dp.keep_own_addresses(nat64_daemon::sys::ipv4_addrs());
        if let Err(e) = dp.replace(&new) {
            error!(trigger, error = %e, "applying the new configuration failed; the running one is written back");
            if let Err(e) = dp.apply(cur) {
                error!(error = %e, "writing the running configuration back failed");
            }
            return;
        }
        self.move_routes(cur.link_routes(), &new).await;
        if let (Some(old), Some(st)) = (&cur.stateful, &new.stateful)
            && old.static_bindings != st.static_bindings
        {
            match dp.bindings() {
                Ok(mut t) => {
                    let (_, failed) = t.sync_static(st);
                    for (i, e) in failed {
                        warn!(error = %e, binding = %st.static_bindings[i].ipv6, "static binding not added");
                    }
                }
                Err(e) => warn!(error = %e, "binding tables unavailable"),
            }
        }
        *cur = new;
        info!(
            trigger,
            pool6 = %cur.pool6.0.map_or("off".to_string(), |p| p.to_string()),
            eam_entries = cur.eam.len(),
            programs_swapped = dp.swaps_programs(),
            "configuration reloaded"
        );
    }

    /// Routes into the translator link what `cfg` translates and removes the routes of `old`
    /// that it no longer does.
    pub(crate) async fn move_routes(
        &self,
        old: (Vec<ipnet::Ipv6Net>, Vec<ipnet::Ipv4Net>),
        cfg: &Config,
    ) {
        let Some(l) = &self.link else { return };
        let (old6, old4) = old;
        let (new6, new4) = cfg.link_routes();
        let routes4 = crate::translator_link::ipv4_routes(self.nl, l, cfg).await;
        *self.ipv4_routes.borrow_mut() = Some(routes4.clone());
        if let Err(e) = nat64_daemon::link::add_routes(self.nl, l, &new6, &routes4).await {
            warn!(error = %e, "adding the new routes failed");
        }
        let gone6: Vec<_> = old6.into_iter().filter(|p| !new6.contains(p)).collect();
        let gone4: Vec<_> = old4.into_iter().filter(|p| !new4.contains(p)).collect();
        if gone6.is_empty() && gone4.is_empty() {
            return;
        }
        match nat64_daemon::link::remove_routes(self.nl, l, &gone6, &gone4).await {
            Ok(()) => info!(
                removed = gone6.len() + gone4.len(),
                "routes of what is no longer translated removed"
            ),
            Err(e) => warn!(error = %e, "removing the old routes failed"),
        }
    }

    /// Puts back what someone else undid: re-creates a deleted translator link (with its
    /// programs and routes), re-attaches to a configured interface that was deleted and has
    /// come back (a new interface index), and writes the link's routes again (replace: a
    /// no-op when they are intact).
    pub(crate) async fn resync(&mut self, dp: &mut Dataplane, cfg: &Config, trigger: &str) {
        use nat64_daemon::sys::if_index;
        if let Err(e) = dp.sync_node_addresses() {
            warn!(trigger, error = %e, "cannot record this node's IPv6 addresses");
        }
        if let Some(l) = &self.link
            && (if_index(&l.name) != Some(l.index) || if_index(&l.peer) != Some(l.peer_index))
        {
            warn!(trigger, link = %l.name, "the translator link was deleted or replaced; re-creating it");
            dp.forget(&l.name);
            dp.forget(&l.peer);
            let (name, peer) = (l.name.clone(), l.peer.clone());
            match crate::translator_link::set_up_link(dp, self.nl, cfg, &name, &peer).await {
                Ok(new) => self.link = Some(new),
                Err(e) => {
                    error!(error = %format!("{e:#}"), "re-creating the translator link failed; trying again at the next re-sync")
                }
            }
        }
        for ifc in &cfg.interfaces {
            let now = if_index(&ifc.name);
            let was = dp.attached_index(&ifc.name);
            if now.is_some() && now == was {
                continue;
            }
            if was.is_some() {
                dp.forget(&ifc.name);
            }
            if now.is_none() {
                if self.gone.insert(ifc.name.clone()) {
                    warn!(trigger, interface = %ifc.name, "interface gone; attaching to it when it comes back");
                }
                continue;
            }
            match dp.attach_interface(ifc, cfg) {
                Ok(a) => {
                    self.gone.remove(&ifc.name);
                    info!(trigger, interface = %ifc.name, hook = %a.hook, mode = %ifc.xdp_mode, "interface back: attached again");
                }
                Err(e) => {
                    error!(trigger, interface = %ifc.name, error = %e, "attaching again failed")
                }
            }
        }
        if let Some(l) = &self.link {
            let (v6, v4) = cfg.link_routes();
            // Asked again after an event (a resync follows every link event and every IPv6
            // route someone adds), so an IPv6 route or interface whose MTU changed moves these
            // routes' MTU with it; the periodic resync reuses the last answer for the same
            // prefixes.
            let cached = self.ipv4_routes.borrow().clone().filter(|r| {
                trigger == PERIODIC && r.iter().map(|(p, _)| *p).eq(v4.iter().copied())
            });
            let routes4 = match cached {
                Some(r) => r,
                None => crate::translator_link::ipv4_routes(self.nl, l, cfg).await,
            };
            *self.ipv4_routes.borrow_mut() = Some(routes4.clone());
            if let Err(e) = nat64_daemon::link::add_routes(self.nl, l, &v6, &routes4).await {
                warn!(trigger, error = %e, "re-syncing the translator link's routes failed");
            }
        }
    }

    /// The configuration file's modification time and size, to notice a change (a Kubernetes
    /// ConfigMap update swaps the file under a symlink).
    pub(crate) fn file_stamp(&self) -> Option<(std::time::SystemTime, u64)> {
        stamp_of(self.args.config.as_ref()?)
    }
}

/// A configuration file's stamp: when it was last modified, and its length.
pub(crate) fn stamp_of(path: &std::path::Path) -> Option<(std::time::SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// The configuration file's stamp as the daemon started, taken before it read the file: a
/// change made while it starts (about 0.3 s of loading and verifying) is then a change to the
/// main loop's first look, and is applied.
pub(crate) static STARTUP_STAMP: std::sync::OnceLock<Option<(std::time::SystemTime, u64)>> =
    std::sync::OnceLock::new();

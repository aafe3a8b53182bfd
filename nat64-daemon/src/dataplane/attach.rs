//! Attaching the programs: resolving the hook of a configured interface, attaching (XDP or
//! TC, pinned so that they outlive the daemon), taking over what an earlier daemon pinned,
//! swapping programs into existing links, detaching or leaving them running at stop.

use super::*;

/// The name of an attachment's pin: interface and hook (a change of hook or XDP mode needs a
/// new link), "IFACE@HOOK". bpffs refuses names with a dot, which interface names may have
/// (VLANs): it is written "%2e" (and '%' "%25").
pub fn pin_name(iface: &str, hook: Hook) -> String {
    let m = match hook {
        Hook::Xdp(XdpMode::Skb) => "generic",
        Hook::Xdp(XdpMode::Driver) => "native",
        Hook::Xdp(XdpMode::Hardware) => "offload",
        Hook::Xdp(XdpMode::Default) => "default",
        Hook::Tc => "tc",
    };
    format!("{}@{m}", iface.replace('%', "%25").replace('.', "%2e"))
}

/// The interface a pin is for (see [`pin_name`]).
pub fn pin_interface(pin: &str) -> Option<String> {
    let (iface, _) = pin.rsplit_once('@')?;
    Some(iface.replace("%2e", ".").replace("%25", "%"))
}

/// Whether this kernel makes XDP links (bpf_link, Linux 5.9), which can be pinned; older
/// kernels attach over netlink, and those attachments end with the daemon.
pub(super) fn kernel_has_xdp_links() -> bool {
    aya::util::KernelVersion::current().is_ok_and(|v| v >= aya::util::KernelVersion::new(5, 9, 0))
}

pub(super) fn attach_err(iface: &str, hook: Hook) -> impl FnOnce(ProgramError) -> DataplaneError {
    let iface = iface.to_string();
    move |source| DataplaneError::Attach {
        iface,
        hook,
        source,
    }
}

pub(super) fn link_err(what: impl Into<String>) -> impl FnOnce(LinkError) -> DataplaneError {
    let what = what.into();
    move |source| DataplaneError::Link { what, source }
}

/// How [`Dataplane::attach_interface`] attached an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InterfaceAttached {
    pub how: Attached,
    pub hook: config::Hook,
    /// Why that hook (for `hook = "auto"`).
    pub why: &'static str,
    pub partial: bool,
}

/// Resolves `partial_checksums = "auto"` for an interface at `hook` (see
/// `config::PartialChecksums`).
pub fn partial_checksums(ifc: &config::Interface, hook: config::Hook) -> bool {
    use config::PartialChecksums;
    match ifc.partial_checksums {
        PartialChecksums::On => true,
        PartialChecksums::Off => false,
        // On the socket-buffer path (generic XDP, TC) any interface can deliver them: a
        // virtio NIC passes the host's partial checksums on, for one.
        PartialChecksums::Auto => {
            ifc.xdp_mode == config::XdpMode::Generic
                || hook == config::Hook::Tc
                || virtual_link(&ifc.name).unwrap_or_else(|e| {
                    tracing::warn!(interface = %ifc.name, error = %e, "cannot query the driver; assuming a virtual link");
                    true
                })
        }
    }
}

/// Whether `iface` is a virtual link (no bus: veth, bridges, tunnels), by its driver.
pub fn virtual_link(iface: &str) -> std::io::Result<bool> {
    crate::sys::driver_info(iface).map(|d| d.bus_info.is_empty())
}

/// Whether this kernel has tcx (Linux 6.6), which the TC hook attaches with.
pub fn kernel_has_tcx() -> bool {
    aya::util::KernelVersion::current().is_ok_and(|v| v >= aya::util::KernelVersion::new(6, 6, 0))
}

/// The hook an interface gets, and why: `hook = "auto"` (see `config::Hook`) is TC on a
/// virtual link when the translator link is on, tcx exists and XDP's generic mode was not
/// asked for; XDP otherwise.
pub fn resolve_hook(ifc: &config::Interface, cfg: &Config) -> (config::Hook, &'static str) {
    use config::Hook;
    match ifc.hook {
        Hook::Auto if cfg.translator_link.0.is_none() => {
            (Hook::Xdp, "auto: the translator link is off")
        }
        Hook::Auto if !kernel_has_tcx() => (Hook::Xdp, "auto: no tcx before Linux 6.6"),
        Hook::Auto if ifc.xdp_mode == config::XdpMode::Generic => {
            (Hook::Xdp, "auto: xdp_mode is generic")
        }
        // A driver that cannot be asked is taken for a virtual link, as for partial checksums.
        Hook::Auto if virtual_link(&ifc.name).unwrap_or(true) => {
            (Hook::Tc, "auto: a virtual link, where TC keeps GSO")
        }
        Hook::Auto => (Hook::Xdp, "auto: a physical NIC"),
        h => (h, "configured"),
    }
}

impl Dataplane {
    /// Pins every attachment made from now on in `dir` (on a bpf filesystem), and takes over
    /// the ones pinned there before: the dataplane then keeps translating while no daemon runs
    /// (stopped with `on_stop = "keep"`, killed, or being upgraded). Returns false, pinning
    /// nothing, where the kernel cannot pin XDP attachments (before Linux 5.9).
    pub fn pin_attachments(&mut self, dir: &std::path::Path) -> std::io::Result<bool> {
        if !kernel_has_xdp_links() {
            return Ok(false);
        }
        std::fs::create_dir_all(dir)?;
        self.link_pins = Some(dir.to_path_buf());
        Ok(true)
    }

    /// Whether [`Dataplane::replace`] swaps whole programs (with pinned state) rather than
    /// writing the maps in place.
    pub fn swaps_programs(&self) -> bool {
        self.state.is_some()
    }

    /// Attaches a configured interface as its settings say: the hook resolved for this
    /// configuration ([`resolve_hook`]), partial checksums resolved for that hook
    /// ([`partial_checksums`]). What the daemon does at start and when an interface comes back.
    pub fn attach_interface(
        &mut self,
        ifc: &config::Interface,
        cfg: &Config,
    ) -> Result<InterfaceAttached, DataplaneError> {
        let (hook, why) = resolve_hook(ifc, cfg);
        let partial = partial_checksums(ifc, hook);
        let how = self.attach(&ifc.name, hook, ifc.xdp_mode, partial)?;
        Ok(InterfaceAttached {
            how,
            hook,
            why,
            partial,
        })
    }

    /// Attaches the program to `iface` and records its per-interface settings.
    /// `partial_checksums` says whether partial transport checksums can arrive there (see
    /// `config::PartialChecksums`).
    pub fn attach(
        &mut self,
        iface: &str,
        hook: config::Hook,
        mode: config::XdpMode,
        partial_checksums: bool,
    ) -> Result<Attached, DataplaneError> {
        // `auto` is the daemon's to resolve; unresolved, it means XDP.
        let (program, hook) = match (hook, mode) {
            (config::Hook::Tc, _) => (TC_PROGRAM, Hook::Tc),
            (_, config::XdpMode::Native) => (XDP_PROGRAM, Hook::Xdp(XdpMode::Driver)),
            (_, config::XdpMode::Generic) => (XDP_PROGRAM, Hook::Xdp(XdpMode::Skb)),
        };
        let ifindex = crate::sys::if_index(iface).ok_or_else(|| DataplaneError::Attach {
            iface: iface.to_string(),
            hook,
            source: ProgramError::UnknownInterface {
                name: iface.to_string(),
            },
        })?;
        // Settings first, so the first packet the program sees is handled right.
        let settings = InterfaceSettings {
            partial_checksums,
            mtu: crate::sys::mtu(iface).unwrap_or(0),
            addr4: crate::sys::ipv4_addr(iface),
        };
        self.set_interface(ifindex, &settings)?;
        self.attach_program(program, iface, ifindex, hook)
    }

    /// Attaches to the translator link (natively: it is a veth): the translating program on
    /// its far end, the pass-through one on the kernel's end, which gives the far end's
    /// `XDP_TX` the NAPI context it needs on veth.
    pub fn attach_link(
        &mut self,
        link: &crate::link::TranslatorLink,
    ) -> Result<Attached, DataplaneError> {
        let settings = InterfaceSettings {
            // The kernel side has transmit checksum offload off (see `link::create`): every
            // checksum arrives complete.
            partial_checksums: false,
            mtu: crate::sys::mtu(&link.peer).unwrap_or(0),
            addr4: None,
        };
        self.set_interface(link.peer_index, &settings)?;
        let mut how = Attached::TakenOver;
        for (iface, ifindex, program) in [
            (&link.name, link.index, RETURN_PROGRAM),
            (&link.peer, link.peer_index, LINK_PROGRAM),
        ] {
            if self.attach_program(program, iface, ifindex, Hook::Xdp(XdpMode::Driver))?
                == Attached::New
            {
                how = Attached::New;
            }
        }
        Ok(how)
    }

    /// Attaches `program` to `iface`: takes over the attachment pinned for it if there is one
    /// (an atomic program swap), else attaches anew, pinning the new link when attachments are
    /// pinned.
    pub(super) fn attach_program(
        &mut self,
        program: &'static str,
        iface: &str,
        ifindex: u32,
        hook: Hook,
    ) -> Result<Attached, DataplaneError> {
        let pin = self
            .link_pins
            .as_ref()
            .map(|d| d.join(pin_name(iface, hook)));
        if let Some(path) = &pin {
            self.unpin_other_modes(iface, path);
        }
        let (handle, how) =
            match self.take_over_pinned(program, hook, iface, ifindex, pin.as_deref()) {
                Some(handle) => (handle, Attached::TakenOver),
                None => (
                    self.attach_pinned(program, hook, iface, ifindex, pin)?,
                    Attached::New,
                ),
            };
        self.links.push(Attachment {
            iface: iface.to_string(),
            ifindex,
            program,
            hook,
            handle,
        });
        Ok(how)
    }

    /// The attachment pinned at `pin` for `iface`, with `program` swapped into it; `None` when
    /// there is none, or it cannot be taken over (it is then removed, to attach anew).
    fn take_over_pinned(
        &mut self,
        program: &'static str,
        hook: Hook,
        iface: &str,
        ifindex: u32,
        pin: Option<&std::path::Path>,
    ) -> Option<Handle> {
        let path = pin.filter(|p| p.exists())?;
        match self.take_over(program, hook, iface, ifindex, path) {
            Ok(handle) => Some(handle),
            Err(e) => {
                tracing::warn!(interface = iface, error = %e, "a pinned attachment could not be taken over; attaching anew");
                let _ = std::fs::remove_file(path);
                None
            }
        }
    }

    /// Attaches `program` anew, and pins the link at `pin` when attachments are pinned.
    fn attach_pinned(
        &mut self,
        program: &'static str,
        hook: Hook,
        iface: &str,
        ifindex: u32,
        pin: Option<std::path::PathBuf>,
    ) -> Result<Handle, DataplaneError> {
        let link = self.attach_new(program, hook, iface, ifindex)?;
        let Some(path) = pin else {
            return Ok(Handle::Owned(link));
        };
        let fd = link.into_fd().map_err(link_err(format!(
            "the attachment to {iface} is not a bpf link"
        )))?;
        let pinned = fd.pin(&path).map_err(|source| DataplaneError::Pin {
            what: format!("the attachment to {iface} at {}", path.display()),
            source,
        })?;
        Ok(Handle::Pinned(pinned, path))
    }

    /// A new attachment of `program` to `iface` at `hook`.
    pub(super) fn attach_new(
        &mut self,
        program: &'static str,
        hook: Hook,
        iface: &str,
        ifindex: u32,
    ) -> Result<Link, DataplaneError> {
        let prog_err = |source| DataplaneError::Program {
            name: program,
            source,
        };
        match hook {
            Hook::Xdp(mode) => {
                let p = self.program_mut(program)?;
                let id = p
                    .attach_to_if_index(ifindex, mode)
                    .map_err(attach_err(iface, hook))?;
                p.take_link(id).map(Link::Xdp).map_err(prog_err)
            }
            Hook::Tc => {
                let p = self.tc_mut()?;
                // A tcx link (not a clsact filter over netlink): it can be pinned and its
                // program swapped atomically, like an XDP link.
                let id = p
                    .attach_with_options(
                        iface,
                        TcAttachType::Ingress,
                        TcAttachOptions::TcxOrder(LinkOrder::default()),
                    )
                    .map_err(attach_err(iface, hook))?;
                p.take_link(id).map(Link::Tc).map_err(prog_err)
            }
        }
    }

    /// Swaps `program` into the existing `link` (one atomic link update).
    pub(super) fn swap(
        &mut self,
        program: &'static str,
        link: FdLink,
        hook: Hook,
        iface: &str,
    ) -> Result<Link, DataplaneError> {
        let what = || format!("the attachment to {iface}");
        let prog_err = |source| DataplaneError::Program {
            name: program,
            source,
        };
        match hook {
            Hook::Xdp(_) => {
                let link = XdpLink::try_from(link).map_err(link_err(what()))?;
                let p = self.program_mut(program)?;
                let id = p.attach_to_link(link).map_err(attach_err(iface, hook))?;
                p.take_link(id).map(Link::Xdp).map_err(prog_err)
            }
            Hook::Tc => {
                let link = SchedClassifierLink::try_from(link).map_err(link_err(what()))?;
                let p = self.tc_mut()?;
                let id = p.attach_to_link(link).map_err(attach_err(iface, hook))?;
                p.take_link(id).map(Link::Tc).map_err(prog_err)
            }
        }
    }

    /// Swaps `program` into the link pinned at `path`, after checking that the link is
    /// attached to `ifindex` (a pin can outlive its interface, or name one since recreated).
    pub(super) fn take_over(
        &mut self,
        program: &'static str,
        hook: Hook,
        iface: &str,
        ifindex: u32,
        path: &std::path::Path,
    ) -> Result<Handle, DataplaneError> {
        let what = || format!("the pinned attachment to {iface} ({})", path.display());
        match crate::sys::pinned_link_ifindex(path) {
            Some(i) if i == ifindex => {}
            found => {
                return Err(DataplaneError::Link {
                    what: format!(
                        "{}: attached to interface index {found:?}, not {ifindex}",
                        what()
                    ),
                    source: LinkError::InvalidLink,
                });
            }
        }
        let pinned = PinnedLink::from_pin(path).map_err(link_err(what()))?;
        let link = self.swap(program, FdLink::from(pinned), hook, iface)?;
        self.hold(link, Some(path), iface)
    }

    /// Keeps `link`: as the pinned link at `pin` when there is one (this descriptor is closed;
    /// the pin keeps the link), else owned.
    pub(super) fn hold(
        &mut self,
        link: Link,
        pin: Option<&std::path::Path>,
        iface: &str,
    ) -> Result<Handle, DataplaneError> {
        match pin {
            None => Ok(Handle::Owned(link)),
            Some(path) => {
                drop(link);
                let p = PinnedLink::from_pin(path)
                    .map_err(link_err(format!("the pinned attachment to {iface}")))?;
                Ok(Handle::Pinned(p, path.to_path_buf()))
            }
        }
    }

    /// Removes pins of `iface` in another mode than `keep` (their links detach with them):
    /// one XDP program per interface.
    pub(super) fn unpin_other_modes(&self, iface: &str, keep: &std::path::Path) {
        let Some(dir) = &self.link_pins else { return };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            let name = e.file_name();
            let name = name.to_string_lossy();
            if path != keep && pin_interface(&name).is_some_and(|i| i == iface) {
                tracing::info!(interface = iface, pin = %path.display(), "removing the attachment pinned in another mode");
                let _ = std::fs::remove_file(&path);
            }
        }
    }

    /// Removes the pinned attachments that this daemon did not take over (interfaces no longer
    /// configured): their links detach. Returns the interfaces concerned.
    pub fn unpin_unclaimed(&self) -> Vec<String> {
        let Some(dir) = &self.link_pins else {
            return Vec::new();
        };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut gone = Vec::new();
        for e in entries.flatten() {
            let path = e.path();
            let claimed = self
                .links
                .iter()
                .any(|a| matches!(&a.handle, Handle::Pinned(_, p) if *p == path));
            if !claimed && std::fs::remove_file(&path).is_ok() {
                gone.push(e.file_name().to_string_lossy().into_owned());
            }
        }
        gone
    }

    /// Detaches from every interface, newest first (pinned attachments lose their pins).
    pub fn detach_all(&mut self) -> Vec<(String, Result<(), ProgramError>)> {
        let links = std::mem::take(&mut self.links);
        let mut out = Vec::new();
        for link in links.into_iter().rev() {
            let r = match link.handle {
                Handle::Owned(l) => {
                    drop(l);
                    Ok(())
                }
                // The last reference to the link is this descriptor once the pin is gone.
                Handle::Pinned(p, _) => p.unpin().map(drop).map_err(ProgramError::from),
            };
            if let Ok(mut m) = self.ifaces() {
                let _ = m.remove(&link.ifindex);
            }
            out.push((link.iface, r));
        }
        out
    }

    /// Leaves the pinned attachments translating after this process ends (their programs keep
    /// running over the maps they hold) and detaches the others. Returns the interfaces left
    /// translating.
    pub fn leave_running(&mut self) -> Vec<String> {
        let mut kept = Vec::new();
        for link in std::mem::take(&mut self.links).into_iter().rev() {
            if matches!(link.handle, Handle::Pinned(..)) {
                kept.push(link.iface);
            }
        }
        kept
    }

    /// The interface index `iface` was attached under, if it is attached.
    pub fn attached_index(&self, iface: &str) -> Option<u32> {
        self.links
            .iter()
            .find(|a| a.iface == iface)
            .map(|a| a.ifindex)
    }

    /// Removes the interface settings (`IFACES`, pinned with the state) of every interface
    /// this daemon has not attached: those of interfaces that went while no daemon ran, or that
    /// the configuration no longer lists. Returns how many. Called once everything is attached.
    pub fn prune_interface_settings(&mut self) -> usize {
        let attached: Vec<u32> = self.links.iter().map(|a| a.ifindex).collect();
        let Ok(mut m) = self.ifaces() else {
            return 0;
        };
        let stale: Vec<u32> = m
            .keys()
            .filter_map(Result::ok)
            .filter(|k| !attached.contains(k))
            .collect();
        stale.iter().filter(|k| m.remove(k).is_ok()).count()
    }

    /// Drops the attachment to `iface` (whose interface is gone or was replaced): its pin is
    /// removed, its settings forgotten.
    pub fn forget(&mut self, iface: &str) {
        let Some(i) = self.links.iter().position(|a| a.iface == iface) else {
            return;
        };
        let a = self.links.remove(i);
        if let Handle::Pinned(p, _) = a.handle {
            let _ = p.unpin();
        }
        if let Ok(mut m) = self.ifaces() {
            let _ = m.remove(&a.ifindex);
        }
    }

    /// The interfaces currently attached.
    pub fn attached(&self) -> impl Iterator<Item = &str> {
        self.links.iter().map(|l| l.iface.as_str())
    }

    /// The loaded fast-path program, for `BPF_PROG_TEST_RUN` in tests and benchmarks.
    pub fn xdp(&self) -> Result<&Xdp, DataplaneError> {
        self.program(XDP_PROGRAM)
    }

    /// A loaded program by name (one of the `*_PROGRAM` constants).
    pub fn program(&self, name: &'static str) -> Result<&Xdp, DataplaneError> {
        typed(&self.ebpf, name)
    }

    /// The loaded TC program, for `BPF_PROG_TEST_RUN` in tests and benchmarks.
    pub fn tc(&self) -> Result<&SchedClassifier, DataplaneError> {
        typed(&self.ebpf, TC_PROGRAM)
    }

    pub(super) fn tc_mut(&mut self) -> Result<&mut SchedClassifier, DataplaneError> {
        typed_mut(&mut self.ebpf, TC_PROGRAM)
    }

    pub(super) fn program_mut(&mut self, name: &'static str) -> Result<&mut Xdp, DataplaneError> {
        typed_mut(&mut self.ebpf, name)
    }
}

//! Writing the configuration into the dataplane's maps: the `CONFIG` slots, pool4 and its
//! trie, the EAM tries, the node's addresses, per-interface settings and the program array.

use super::*;

impl Dataplane {
    /// Writes a validated configuration into the maps: EAM entries first, then the config slot.
    pub fn apply(&mut self, cfg: &Config) -> Result<(), DataplaneError> {
        self.apply_eams(cfg)?;
        self.apply_pool4(cfg)?;
        self.sync_node_addresses()?;
        let mut array: Array<_, nat64_common::maps::Config> = Array::try_from(
            self.ebpf
                .map_mut("CONFIG")
                .ok_or(DataplaneError::Missing("map CONFIG"))?,
        )
        .map_err(map_err("CONFIG"))?;
        let mut fast = cfg.dataplane();
        if own_rfc6791_source(cfg) {
            fast.flags2 |= nat64_common::maps::CONFIG_F2_POOL6791_LOCAL;
        }
        // A pool4 address shared with the node (`Config::shared4`): the dataplane knows one.
        if let Some(st) = &cfg.stateful {
            let mut shared = self
                .own4
                .iter()
                .map(|(_, a)| *a)
                .filter(|a| st.pool4.iter().any(|p| p.contains(a)));
            if let Some(a) = shared.next() {
                fast.shared4 = a.octets();
                let mut others: Vec<_> = shared.filter(|o| *o != a).collect();
                others.sort();
                others.dedup();
                if !others.is_empty() && others != self.unshared4 {
                    tracing::warn!(shared = %a, others = ?others, "stateful.pool4 holds more than one of this node's addresses, and only the first is shared: to the others, flows hairpinned through this node and datagrams it must fragment for a client are lost (the kernel keeps them); give pool4 one of the node's addresses, or addresses the node does not hold");
                }
                self.unshared4 = others;
            }
        }
        // What must be fragmented on its way to a client of the shared address goes into the
        // link under the alias (`Config::shared4_alias`), routed there with the link
        // (`link_routes`). Set with no address shared too: the link then drops what comes to
        // the alias, which would otherwise go round through it.
        if let Some(alias) = cfg.shared_alias() {
            let second = Config::df_alias(alias);
            if let Some((_, own)) = self.own4.iter().find(|(_, o)| *o == alias || *o == second) {
                tracing::warn!(%alias, address = %own, "stateful.shared_address_alias or the address after it is one of this node's own addresses: packets to fragment for a shared pool4 address are translated as they come");
            } else {
                fast.shared4_alias = alias.octets();
            }
        }
        // The link's kernel side, for what TC redirects into it (`Config::link_ifindex`).
        if let Some(name) = cfg.translator_link.0.as_deref()
            && let Some(ifindex) = crate::sys::if_index(name)
            && let Ok(mac) = crate::sys::mac(name)
        {
            fast.link_ifindex = ifindex;
            fast.link_mac = mac;
            self.link_side = Some((ifindex, mac));
        } else {
            self.link_side = None;
        }
        self.link_names = cfg
            .translator_link
            .0
            .iter()
            .cloned()
            .chain(cfg.translator_link.peer())
            .collect();
        self.mtu_floors = crate::sys::mtu_floors(&self.link_names);
        (fast.mtu_floor4, fast.mtu_floor6) = self.mtu_floors;
        let mut link = fast;
        link.flags |= CONFIG_F_ON_LINK;
        // The second halves of hairpinned errors (`CONFIG_F_HAIRPIN_IN`) first: nothing takes
        // those slots before a fast path or link slot has sent a frame there.
        for (slot, mut c) in [
            (CONFIG_SLOT_FAST_PATH_HAIRPIN, fast),
            (CONFIG_SLOT_LINK_HAIRPIN, link),
        ] {
            c.flags |= CONFIG_F_HAIRPIN_IN;
            array.set(slot, c, 0).map_err(map_err("CONFIG"))?;
        }
        array
            .set(CONFIG_SLOT_LINK, link, 0)
            .map_err(map_err("CONFIG"))?;
        array
            .set(CONFIG_SLOT_FAST_PATH, fast, 0)
            .map_err(map_err("CONFIG"))?;
        self.fill_progs()
    }

    /// Writes the interfaces' MTU floors into every configuration slot if they changed (an
    /// interface came, went or changed its MTU): called on every link event, at once, so that
    /// the first-hop MTU check (`egress.rs`) sees a smaller MTU before traffic meets it.
    /// Returns the floors when they changed.
    pub fn refresh_mtu_floors(&mut self) -> Result<Option<(u16, u16)>, DataplaneError> {
        let floors = crate::sys::mtu_floors(&self.link_names);
        if floors == self.mtu_floors {
            return Ok(None);
        }
        let mut array: Array<_, nat64_common::maps::Config> = Array::try_from(
            self.ebpf
                .map_mut("CONFIG")
                .ok_or(DataplaneError::Missing("map CONFIG"))?,
        )
        .map_err(map_err("CONFIG"))?;
        for slot in 0..nat64_common::maps::CONFIG_SLOTS {
            let mut c = array.get(&slot, 0).map_err(map_err("CONFIG"))?;
            (c.mtu_floor4, c.mtu_floor6) = floors;
            array.set(slot, c, 0).map_err(map_err("CONFIG"))?;
        }
        self.mtu_floors = floors;
        Ok(Some(floors))
    }

    /// Points the dispatchers' program array (`PROGS`) at this object's programs, once its
    /// configuration is written: with a pinned array shared with a running dispatcher (a
    /// restart or a reload), the switch happens here, slot by slot, each packet running one
    /// program of one object.
    pub(super) fn fill_progs(&mut self) -> Result<(), DataplaneError> {
        let mut fds = Vec::with_capacity(TAIL_PROGRAMS.len());
        // The 4-to-6 slots first: a 6-to-4 program hands the second half of a hairpinned error
        // to the 4-to-6 slot of its dispatcher (`again_4to6`), which then already holds a
        // program of its own build.
        let mut order = TAIL_PROGRAMS;
        order.sort_by_key(|(slot, _)| {
            !matches!(
                *slot,
                nat64_common::maps::PROG_XDP_4TO6 | nat64_common::maps::PROG_LINK_4TO6
            )
        });
        for (slot, name) in order {
            let fd = typed::<Xdp>(&self.ebpf, name)?
                .fd()
                .and_then(|fd| fd.try_clone().map_err(Into::into))
                .map_err(|source| DataplaneError::Program { name, source })?;
            fds.push((slot, fd));
        }
        let mut progs: aya::maps::ProgramArray<_> = aya::maps::ProgramArray::try_from(
            self.ebpf
                .map_mut("PROGS")
                .ok_or(DataplaneError::Missing("map PROGS"))?,
        )
        .map_err(map_err("PROGS"))?;
        for (slot, fd) in &fds {
            progs.set(*slot, fd, 0).map_err(map_err("PROGS"))?;
        }
        Ok(())
    }

    /// This node's own IPv6 addresses into `NODE6` (and the ones gone out): an ICMPv6 error
    /// from one of them that reaches the translator link is the node's own, and leaves from
    /// its IPv4 address. At start, on reload and at each re-sync.
    pub fn sync_node_addresses(&mut self) -> Result<(), DataplaneError> {
        let mut m: aya::maps::HashMap<_, [u8; 16], u8> = aya::maps::HashMap::try_from(
            self.ebpf
                .map_mut("NODE6")
                .ok_or(DataplaneError::Missing("map NODE6"))?,
        )
        .map_err(map_err("NODE6"))?;
        let want: Vec<[u8; 16]> = crate::sys::ipv6_addrs()
            .iter()
            .take(nat64_common::maps::NODE6_MAX_ENTRIES as usize)
            .map(|a| a.octets())
            .collect();
        let stale: Vec<[u8; 16]> = m
            .keys()
            .filter_map(Result::ok)
            .filter(|k| !want.contains(k))
            .collect();
        for k in stale {
            m.remove(&k).map_err(map_err("NODE6"))?;
        }
        for k in &want {
            m.insert(k, 1, 0).map_err(map_err("NODE6"))?;
        }
        Ok(())
    }

    /// pool4's prefixes, numbered in order (`POOL4`) and as a trie (`POOL4_LPM`).
    pub(super) fn apply_pool4(&mut self, cfg: &Config) -> Result<(), DataplaneError> {
        let prefixes = cfg.stateful.as_ref().map_or(&[][..], |s| &s.pool4[..]);
        {
            let mut arr: Array<_, Pool4Prefix> = Array::try_from(
                self.ebpf
                    .map_mut("POOL4")
                    .ok_or(DataplaneError::Missing("map POOL4"))?,
            )
            .map_err(map_err("POOL4"))?;
            let mut first = 0u32;
            for (i, p) in prefixes.iter().enumerate() {
                let count = 1u32 << (32 - p.prefix_len());
                let v = Pool4Prefix {
                    addr: p.network().octets(),
                    len: p.prefix_len(),
                    _pad: [0; 3],
                    first,
                    count,
                };
                arr.set(i as u32, v, 0).map_err(map_err("POOL4"))?;
                first += count;
            }
        }
        // The prefixes as a trie, each to its index in `POOL4`.
        let lpm = prefixes
            .iter()
            .enumerate()
            .map(|(i, p)| (p.prefix_len(), p.network().octets(), i as u32));
        self.sync_trie(("POOL4_LPM", "map POOL4_LPM"), lpm)
    }

    pub(super) fn apply_eams(&mut self, cfg: &Config) -> Result<(), DataplaneError> {
        let (local6, local4) = cfg.local_exclusions(&self.own4);
        // The EAM entries, then this node's own addresses among them (`EAM_F_LOCAL`).
        let six = cfg
            .eam
            .iter()
            .map(|e| {
                let v = EamToV4 {
                    v4: e.ipv4.network().octets(),
                    v4_len: e.ipv4.prefix_len(),
                    shift: e.shift(),
                    flags: 0,
                    _pad: [0; 1],
                };
                (e.ipv6.prefix_len(), e.ipv6.network().octets(), v)
            })
            .chain(
                local6
                    .into_iter()
                    .map(|(p, v)| (p.prefix_len(), p.network().octets(), v)),
            );
        self.sync_trie(("EAM6", "map EAM6"), six)?;
        // The EAM entries, and the pool6_ipv4 prefixes (flagged: they map through pool6).
        // Then this node's own addresses among them (`EAM_F_LOCAL`), last so that they win.
        let four = cfg
            .eam4_entries()
            .chain(cfg.pool6_ipv4_entries())
            .chain(local4)
            .map(|(p, v)| (p.prefix_len(), p.network().octets(), v));
        self.sync_trie(("EAM4", "map EAM4"), four)
    }

    /// Makes the LPM trie `name` (`missing`: the error if it is not there) hold exactly `entries` (prefix length, prefix, value): each
    /// written first (a lookup never misses an entry that stays), then the stale ones removed.
    /// A later entry for the same prefix replaces an earlier one.
    pub(super) fn sync_trie<K: aya::Pod + PartialEq, V: aya::Pod>(
        &mut self,
        (name, missing): (&'static str, &'static str),
        entries: impl Iterator<Item = (u8, K, V)>,
    ) -> Result<(), DataplaneError> {
        let mut trie: LpmTrie<_, K, V> = LpmTrie::try_from(
            self.ebpf
                .map_mut(name)
                .ok_or(DataplaneError::Missing(missing))?,
        )
        .map_err(map_err(name))?;
        let stale: Vec<Key<K>> = trie.keys().filter_map(Result::ok).collect();
        let mut wanted: Vec<Key<K>> = Vec::new();
        for (len, prefix, v) in entries {
            let k = Key::new(len as u32, prefix);
            trie.insert(&k, v, 0).map_err(map_err(name))?;
            wanted.push(k);
        }
        let same =
            |a: &Key<K>, b: &Key<K>| a.prefix_len() == b.prefix_len() && a.data() == b.data();
        for k in stale.iter().filter(|k| !wanted.iter().any(|w| same(w, k))) {
            trie.remove(k).map_err(map_err(name))?;
        }
        Ok(())
    }

    /// Records the per-interface settings of `ifindex` (done by [`Dataplane::attach`]; public
    /// for tests that run the program with `BPF_PROG_TEST_RUN`, whose ingress is loopback).
    pub fn set_interface(
        &mut self,
        ifindex: u32,
        s: &InterfaceSettings,
    ) -> Result<(), DataplaneError> {
        let flags = if s.partial_checksums {
            IFACE_F_PARTIAL_CSUM
        } else {
            0
        };
        let value = IfaceConfig {
            flags,
            mtu: s.mtu,
            addr4: s.addr4.map_or([0; 4], |a| a.octets()),
            _pad: [0; 4],
        };
        self.ifaces()?
            .insert(ifindex, value, 0)
            .map_err(map_err("IFACES"))
    }

    pub(super) fn ifaces(
        &mut self,
    ) -> Result<HashMap<&mut aya::maps::MapData, u32, IfaceConfig>, DataplaneError> {
        HashMap::try_from(
            self.ebpf
                .map_mut("IFACES")
                .ok_or(DataplaneError::Missing("map IFACES"))?,
        )
        .map_err(map_err("IFACES"))
    }
}

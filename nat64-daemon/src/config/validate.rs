//! Validation of a whole configuration, without looking at the system: every value checked,
//! and the ones that depend on each other (EAM overlaps, pool6_ipv4 under pool6, pool4 against
//! EAM). Errors name the field and the reason.

use ipnet::{IpNet, Ipv6Net};
use nat64_common::{
    addr::{RFC6052_LENGTHS, U_OCTET},
    maps::EAM_MAX_ENTRIES,
};

use super::*;

impl Config {
    /// Checks everything that can be checked without the system.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(p) = self.pool6.0 {
            validate_pool6(&p)?;
        }
        if self.ipv6_mtu != 0 && self.ipv6_mtu < 1280 {
            return Err(invalid(
                "ipv6_mtu",
                format!(
                    "{} is below 1280, the minimum IPv6 link MTU (RFC 8200 section 5); 0 disables the check",
                    self.ipv6_mtu
                ),
            ));
        }
        if self.on_stop == OnStop::Keep && self.state_dir.get().is_none() {
            return Err(invalid(
                "on_stop",
                "\"keep\" pins the attachments in state_dir, which is \"off\"",
            ));
        }
        if let Some(a) = self.pool6791
            && !nat64_common::addr::is_translatable_v4(a.octets())
        {
            return Err(invalid(
                "pool6791",
                format!("{a} is not a unicast address a translated packet may come from"),
            ));
        }
        if let Some(a) = self.pool6791v6
            && (a.is_unspecified() || a.is_loopback() || a.is_multicast())
        {
            return Err(invalid(
                "pool6791v6",
                format!("{a} is not a unicast address a translated packet may come from"),
            ));
        }
        let mut names = BTreeSet::new();
        for (i, ifc) in self.interfaces.iter().enumerate() {
            let field = format!("interfaces[{i}].name");
            if ifc.name.is_empty() || ifc.name.len() > 15 || ifc.name.contains(['/', ' ', ':']) {
                return Err(invalid(
                    field,
                    format!(
                        "{:?} is not a valid interface name (1 to 15 characters, no '/', ':' or spaces)",
                        ifc.name
                    ),
                ));
            }
            if !names.insert(ifc.name.as_str()) {
                return Err(invalid(
                    field,
                    format!("interface {:?} is listed twice", ifc.name),
                ));
            }
            if ifc.hook == Hook::Tc && self.translator_link.0.is_none() {
                return Err(invalid(
                    format!("interfaces[{i}].hook"),
                    "the TC hook leaves ICMP errors, extension headers, IPv4 options and \
                     fragments to the translator link, so translator_link cannot be \"off\"",
                ));
            }
        }
        if let (Some(link), Some(peer)) = (&self.translator_link.0, self.translator_link.peer())
            && let Some(i) = self
                .interfaces
                .iter()
                .position(|ifc| ifc.name == *link || ifc.name == peer)
        {
            return Err(invalid(
                "translator_link",
                format!(
                    "{link:?} (and its far end {peer:?}) belong to the daemon; interfaces[{i}] names {:?}",
                    self.interfaces[i].name
                ),
            ));
        }
        if let Some(st) = &self.stateful {
            validate_stateful(st, &self.eam, self.pool6.0.is_some())?;
            for a in st.alias_addresses() {
                if let Some((i, p)) = self
                    .pool6_ipv4
                    .iter()
                    .enumerate()
                    .find(|(_, p)| p.contains(&a))
                {
                    return Err(invalid(
                        "stateful.shared_address_alias",
                        format!(
                            "{a} lies in pool6_ipv4[{i}] ({p}): the alias and the address after it must be addresses nothing else uses"
                        ),
                    ));
                }
            }
        }
        for (i, p) in self.pool6_ipv4.iter().enumerate() {
            let field = format!("pool6_ipv4[{i}]");
            if self.pool6.0.is_none() {
                return Err(invalid(
                    field,
                    "its addresses are embedded under pool6, which is \"off\"",
                ));
            }
            if *p != p.trunc() {
                return Err(invalid(
                    field,
                    format!("{p} has host bits set; write {}", p.trunc()),
                ));
            }
            if self.pool6.0.is_some_and(|p6| p6.prefix_len() != 96)
                && self
                    .pool6_ipv4
                    .iter()
                    .map(|p| 1u64 << (32 - p.prefix_len()))
                    .sum::<u64>()
                    > POOL6_IPV4_MAX_EXPANDED
            {
                return Err(invalid(
                    field,
                    format!(
                        "with a pool6 shorter than /96 each address takes a table entry, and the prefixes hold more than {POOL6_IPV4_MAX_EXPANDED} addresses; list fewer, or use a /96 pool6"
                    ),
                ));
            }
            if !nat64_common::addr::is_translatable_v4(p.network().octets()) {
                return Err(invalid(
                    field,
                    format!(
                        "{p} starts with an address that is never translated (0/8, 127/8, multicast, class E)"
                    ),
                ));
            }
            // RFC 6052 section 3.1: the Well-Known Prefix must not carry non-global addresses.
            let wkp = self.pool6.0.is_some_and(|p6| {
                p6.prefix_len() == 96 && p6.addr().octets() == nat64_common::addr::WKP
            });
            if let Some((a, len)) = nat64_common::addr::NON_GLOBAL_V4.iter().find(|(a, len)| {
                wkp && Ipv4Net::new(std::net::Ipv4Addr::from(*a), *len)
                    .is_ok_and(|n| n.contains(p) || p.contains(&n))
            }) {
                return Err(invalid(
                    field,
                    format!(
                        "{p} overlaps {}/{len}, which is not global: the well-known prefix 64:ff9b::/96 must not carry it (RFC 6052 section 3.1); use a network-specific pool6 (such as a /96 of your own) or an EAM entry",
                        std::net::Ipv4Addr::from(*a)
                    ),
                ));
            }
        }
        // Entries with a longer IPv6 suffix take one per address (`eam4_entries`), counted
        // once each is known valid.
        for (i, e) in self.eam.iter().enumerate() {
            validate_eam(i, e)?;
        }
        // Counted, not listed: a /0 would list four billion.
        let entries = self
            .eam
            .iter()
            .map(|e| match e.shift() {
                0 => 1u64,
                _ => 1u64 << (32 - e.ipv4.prefix_len()),
            })
            .sum::<u64>()
            + self.pool6_ipv4_entries().count() as u64;
        if entries > EAM_MAX_ENTRIES as u64 {
            return Err(invalid(
                "eam",
                format!(
                    "{} entries take {entries} table entries (an entry whose IPv6 suffix is longer than its IPv4 one takes one per address, as does pool6_ipv4 under a pool6 shorter than /96); the dataplane holds at most {EAM_MAX_ENTRIES}",
                    self.eam.len()
                ),
            ));
        }
        for (i, e) in self.eam.iter().enumerate() {
            // An entry inside pool6 is fine: the EAM table is looked up first (RFC 7757
            // section 3.3), so its addresses translate by it and the rest of pool6 as usual.
            validate_eam(i, e)?;
            if let Some((j, p)) = self
                .pool6_ipv4
                .iter()
                .enumerate()
                .find(|(_, p)| **p == e.ipv4)
            {
                return Err(invalid(
                    format!("pool6_ipv4[{j}]"),
                    format!(
                        "{p} is eam[{i}].ipv4 too: an address would have two translations (a longer or shorter prefix is fine: the longest match wins)"
                    ),
                ));
            }
            for (j, other) in self.eam.iter().enumerate().take(i) {
                if overlaps(IpNet::V6(e.ipv6), IpNet::V6(other.ipv6)) {
                    return Err(invalid(
                        format!("eam[{i}].ipv6"),
                        format!("{} overlaps eam[{j}].ipv6 {}", e.ipv6, other.ipv6),
                    ));
                }
                if overlaps(IpNet::V4(e.ipv4), IpNet::V4(other.ipv4)) {
                    return Err(invalid(
                        format!("eam[{i}].ipv4"),
                        format!("{} overlaps eam[{j}].ipv4 {}", e.ipv4, other.ipv4),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The most addresses `pool6_ipv4` may cover with a pool6 shorter than /96 (each takes an entry
/// of the EAM4 trie, which holds `EAM_MAX_ENTRIES`).
pub const POOL6_IPV4_MAX_EXPANDED: u64 = 2048;

fn validate_pool6(p: &Ipv6Net) -> Result<(), ConfigError> {
    if !RFC6052_LENGTHS.contains(&p.prefix_len()) {
        return Err(invalid(
            "pool6",
            format!(
                "prefix length /{} is not one of /32, /40, /48, /56, /64, /96 (RFC 6052 section 2.2)",
                p.prefix_len()
            ),
        ));
    }
    if p.addr() != p.network() {
        return Err(invalid(
            "pool6",
            format!(
                "{p} has bits set past the prefix length; did you mean {}?",
                p.trunc()
            ),
        ));
    }
    if p.addr().octets()[U_OCTET] != 0 {
        return Err(invalid(
            "pool6",
            format!("{p}: bits 64 to 71 (the u-octet) must be zero (RFC 6052 section 2.2)"),
        ));
    }
    Ok(())
}

fn validate_eam(i: usize, e: &Eam) -> Result<(), ConfigError> {
    if e.ipv6.addr() != e.ipv6.network() {
        return Err(invalid(
            format!("eam[{i}].ipv6"),
            format!(
                "{} has bits set past the prefix length; did you mean {}?",
                e.ipv6,
                e.ipv6.trunc()
            ),
        ));
    }
    if e.ipv4.addr() != e.ipv4.network() {
        return Err(invalid(
            format!("eam[{i}].ipv4"),
            format!(
                "{} has bits set past the prefix length; did you mean {}?",
                e.ipv4,
                e.ipv4.trunc()
            ),
        ));
    }
    let s6 = 128 - e.ipv6.prefix_len();
    let s4 = 32 - e.ipv4.prefix_len();
    if s6 < s4 {
        return Err(invalid(
            format!("eam[{i}]"),
            format!(
                "{} has {s6} suffix bits but {} has {s4}; the IPv6 side of an explicit address mapping needs at least as many (RFC 7757 section 3.2), or addresses would be lost",
                e.ipv6, e.ipv4
            ),
        ));
    }
    if s6 > 64 {
        return Err(invalid(
            format!("eam[{i}]"),
            format!(
                "{} is shorter than /64 and has more suffix bits than {} ({s6} against {s4}); the IPv4 suffix must lie in the IPv6 address's last 64 bits: use a /64 or longer IPv6 prefix",
                e.ipv6, e.ipv4
            ),
        ));
    }
    Ok(())
}

pub(super) fn overlaps(a: IpNet, b: IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

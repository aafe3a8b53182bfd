//! Deterministic address mapping (RFC 7422): every client prefix gets a pool4 address and a
//! block of ports computed from the configuration alone, so that an IPv4 address and port, as
//! a server logged them, lead back to the client offline, with no log at all, across restarts
//! and across nodes that share the configuration.
//!
//! The clients are the prefixes of length `client_len` inside `prefix`/`prefix_len`, numbered
//! in address order. pool4's addresses (over all its prefixes, in order) take `per_addr`
//! clients each, in order; a client's block is its slot within its address times `block`
//! ports, from the bottom of the protocol's port range (RFC 7422 section 2: the subscriber
//! index gives the address and the port range). The same function runs in the dataplane (to
//! allocate) and in `nat64d map` (to answer).

/// The mapping, as the dataplane's configuration carries it (`Config::det`). All zero: off.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Deterministic {
    /// The clients' prefix (network order; bits past `prefix_len` zero).
    pub prefix: [u8; 16],
    pub prefix_len: u8,
    /// Each client's prefix length: 64 gives every /64 its block.
    pub client_len: u8,
    pub _pad: [u8; 2],
    /// Clients per pool4 address; 0: the mode is off.
    pub per_addr: u32,
    /// Ports (ICMP identifiers) per block, per protocol: TCP, UDP, ICMP.
    pub block: [u16; 3],
    pub _pad2: [u16; 1],
}
const _: () = assert!(core::mem::size_of::<Deterministic>() == 32);

/// The most index bits (client_len - prefix_len) the mode takes: 2^24 clients.
pub const MAX_INDEX_BITS: u8 = 24;

/// The masks of the first `len` bits of an address, as its two 64-bit halves.
#[inline(always)]
const fn masks(len: u8) -> (u64, u64) {
    let hi = if len >= 64 {
        u64::MAX
    } else if len == 0 {
        0
    } else {
        u64::MAX << (64 - len)
    };
    let lo = if len >= 128 {
        u64::MAX
    } else if len <= 64 {
        0
    } else {
        u64::MAX << (128 - len)
    };
    (hi, lo)
}

/// An address as its two 64-bit halves (host order). Read as two words rather than through
/// byte arrays, so that the dataplane needs no stack for it.
#[inline(always)]
fn halves(a: &[u8; 16]) -> (u64, u64) {
    let p = a.as_ptr() as *const u64;
    // SAFETY: `a` holds 16 readable bytes; the reads are unaligned-safe.
    unsafe {
        (
            u64::from_be(core::ptr::read_unaligned(p)),
            u64::from_be(core::ptr::read_unaligned(p.add(1))),
        )
    }
}

impl Deterministic {
    /// The mode off.
    pub const OFF: Self = Self {
        prefix: [0; 16],
        prefix_len: 0,
        client_len: 0,
        _pad: [0; 2],
        per_addr: 0,
        block: [0; 3],
        _pad2: [0; 1],
    };

    /// Whether the mode is on.
    #[inline(always)]
    pub const fn enabled(&self) -> bool {
        self.per_addr != 0
    }

    /// How many bits number the clients.
    #[inline(always)]
    pub const fn index_bits(&self) -> u8 {
        self.client_len.saturating_sub(self.prefix_len)
    }

    /// How many clients there are.
    pub const fn clients(&self) -> u64 {
        1u64 << self.index_bits()
    }

    /// The index of the client `addr` belongs to, or `None` outside the clients' prefix.
    #[inline(always)]
    pub fn client_index(&self, addr: &[u8; 16]) -> Option<u32> {
        let bits = self.index_bits();
        if !self.enabled() || bits == 0 || bits > MAX_INDEX_BITS {
            return None;
        }
        let (ahi, alo) = halves(addr);
        let (phi, plo) = halves(&self.prefix);
        let (mhi, mlo) = masks(self.prefix_len);
        if (ahi ^ phi) & mhi != 0 || (alo ^ plo) & mlo != 0 {
            return None;
        }
        // The index bits lie in one half (the configuration checks it).
        let (word, end) = if self.client_len <= 64 {
            (ahi, self.client_len)
        } else {
            (alo, self.client_len - 64)
        };
        Some(((word >> (64 - end as u32)) & ((1u64 << bits) - 1)) as u32)
    }

    /// The pool4 address (its index over pool4, in order) and the port range `[lo, hi]` of
    /// client `index` for protocol `proto_index` (TCP 0, UDP 1, ICMP 2) whose range starts at
    /// `range_lo`.
    #[inline(always)]
    pub fn block_of(&self, index: u32, proto_index: usize, range_lo: u16) -> (u32, u16, u16) {
        let per = if self.per_addr == 0 { 1 } else { self.per_addr };
        let block = self.block[if proto_index < 3 { proto_index } else { 2 }];
        let slot = index % per;
        let lo = range_lo as u32 + slot * block as u32;
        let hi = lo + (block as u32).saturating_sub(1);
        (index / per, lo as u16, hi as u16)
    }

    /// The reverse: the index of the client holding `port` of pool4 address `addr_index` for
    /// protocol `proto_index` (range starting at `range_lo`), or `None` if no block has it.
    pub fn client_of(
        &self,
        addr_index: u32,
        port: u16,
        proto_index: usize,
        range_lo: u16,
    ) -> Option<u32> {
        let block = self.block[proto_index.min(2)] as u32;
        if !self.enabled() || block == 0 || port < range_lo {
            return None;
        }
        let slot = (port - range_lo) as u32 / block;
        if slot >= self.per_addr {
            return None;
        }
        let index = addr_index as u64 * self.per_addr as u64 + slot as u64;
        (index < self.clients()).then_some(index as u32)
    }

    /// The prefix of client `index` (its first `client_len` bits; the rest zero).
    pub fn client_prefix(&self, index: u32) -> [u8; 16] {
        let (phi, plo) = halves(&self.prefix);
        let (hi, lo) = if self.client_len <= 64 {
            (phi | ((index as u64) << (64 - self.client_len as u32)), plo)
        } else {
            (
                phi,
                plo | ((index as u64) << (128 - self.client_len as u32)),
            )
        };
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&hi.to_be_bytes());
        out[8..].copy_from_slice(&lo.to_be_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v6(s: &str) -> [u8; 16] {
        let a: core::net::Ipv6Addr = s.parse().unwrap();
        a.octets()
    }

    /// 2001:db8:6::/56 in /64s (256 clients) over 4 addresses: 64 each, blocks of 1000 ports
    /// in 1024-65023.
    fn sites() -> Deterministic {
        Deterministic {
            prefix: v6("2001:db8:6::"),
            prefix_len: 56,
            client_len: 64,
            per_addr: 64,
            block: [1000, 1000, 1000],
            ..Default::default()
        }
    }

    #[test]
    fn clients_are_numbered_in_address_order() {
        let d = sites();
        assert_eq!(d.client_index(&v6("2001:db8:6::1")), Some(0));
        assert_eq!(d.client_index(&v6("2001:db8:6:1::99")), Some(1));
        assert_eq!(d.client_index(&v6("2001:db8:6:ff:1:2:3:4")), Some(255));
        assert_eq!(
            d.client_index(&v6("2001:db8:6:100::1")),
            None,
            "outside the /56"
        );
        assert_eq!(d.client_index(&v6("2001:db8:7::1")), None);
    }

    #[test]
    fn blocks_follow_the_index_and_lead_back_to_it() {
        let d = sites();
        assert_eq!(d.block_of(0, 0, 1024), (0, 1024, 2023));
        assert_eq!(d.block_of(1, 1, 1024), (0, 2024, 3023));
        assert_eq!(d.block_of(64, 0, 1024), (1, 1024, 2023));
        assert_eq!(
            d.block_of(255, 2, 1024),
            (3, 1024 + 63 * 1000, 1024 + 64 * 1000 - 1)
        );
        for index in 0..256 {
            let (a, lo, hi) = d.block_of(index, 0, 1024);
            for port in [lo, lo + (hi - lo) / 2, hi] {
                assert_eq!(d.client_of(a, port, 0, 1024), Some(index), "{index} {port}");
            }
            assert_eq!(d.client_index(&d.client_prefix(index)), Some(index));
        }
        assert_eq!(d.client_of(0, 1023, 0, 1024), None, "below the range");
        assert_eq!(
            d.client_of(0, 1024 + 64 * 1000, 0, 1024),
            None,
            "past the last block"
        );
        assert_eq!(d.client_of(4, 1024, 0, 1024), None, "past the last client");
        assert_eq!(d.client_prefix(17), v6("2001:db8:6:11::"));
    }

    #[test]
    fn client_prefixes_in_the_low_half() {
        let d = Deterministic {
            prefix: v6("2001:db8:6::200"),
            prefix_len: 126,
            client_len: 128,
            per_addr: 4,
            block: [2500, 2500, 2500],
            ..Default::default()
        };
        assert_eq!(d.client_index(&v6("2001:db8:6::201")), Some(1));
        assert_eq!(d.client_index(&v6("2001:db8:6::203")), Some(3));
        assert_eq!(d.client_index(&v6("2001:db8:6::204")), None);
        assert_eq!(d.client_prefix(2), v6("2001:db8:6::202"));
        assert!(!Deterministic::default().enabled());
        assert_eq!(Deterministic::default().client_index(&v6("::")), None);
    }
}

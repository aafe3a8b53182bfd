//! Stateful NAT64 (RFC 6146) in the dataplane: finding or making the binding of an outbound
//! flow, and finding the binding an inbound packet belongs to. The translation itself is the
//! stateless one (RFC 7915, sections 3.5 and 3.7 of RFC 6146 say so) with the IPv4 transport
//! address of the binding in place of a mapped address.
//!
//! Why one file of this size: bindings and sessions (RFC 6146 section 3.5) share their map layouts
//! and the `bpf_loop` callbacks the verifier checks once each; they are read together or not at
//! all.

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::{bpf_get_prandom_u32, bpf_ktime_get_coarse_ns},
    maps::lpm_trie::Key,
};
use nat64_common::{
    DropReason,
    maps::{CONFIG_F2_ADF, Config, POOL4_MAX_PREFIXES},
    state::{
        BIB_F_HELD, BIB_ICMP, BIB_TCP, BIB_UDP, Bib4Key, Bib4Value, BindingEvent, BlockKey,
        BlockOwner, EVENT_BLOCK, EVENT_CREATED, EVENT_REFUSED, Frag6Key, FragKey, HELD_SYN_BYTES,
        MAX_CLIENT_BLOCKS, PeerKey, SessionKey, SessionValue, TCP_FLAG_ACK, TCP_FLAG_RST,
        TCP_FLAG_SYN, TCP_SYN, candidate_port, client_key, next_candidate, pool4_index, tcp_next,
        tcp_step,
    },
};

use crate::{
    frame::Frame,
    maps::{
        BIB4, BIB6, BLOCKS, CLIENT_BLOCKS, CLIENTS, EVENTS, FRAGS, FRAGS6, HELD_SYNS, PEERS, POOL4,
        POOL4_LPM, SESSIONS,
    },
    packet::ETH_LEN,
};

/// How many ports a new flow tries before it is refused: a random one, then the next ones of
/// the same parity (RFC 6056 section 3.3.2). Each try is one atomic insert that fails if the
/// port is taken; a half-full address still finds a port within a few.
const PORT_TRIES: u32 = 64;

/// Whether `a` is a pool4 address: inside pool4's span, and with several prefixes, inside one
/// of them (an LPM lookup, among the dearest steps of a translation, for what only the span
/// cannot tell).
#[inline(always)]
pub fn in_pool4(cfg: &Config, a: [u8; 4]) -> bool {
    nat64_common::addr::in_span4(&cfg.pool4_span, a)
        && (cfg.pool4_prefixes == 1 || POOL4_LPM.get(Key::new(32, a)).is_some())
}

/// Whether `port` (network order) lies in pool4's range for `proto` (`BIB_*`).
#[inline(always)]
pub fn in_ports(cfg: &Config, proto: u8, port: [u8; 2]) -> bool {
    let [lo, hi] = match proto {
        BIB_TCP => cfg.tcp_ports,
        BIB_UDP => cfg.udp_ports,
        _ => cfg.icmp_ids,
    };
    let p = u16::from_be_bytes(port);
    lo <= p && p <= hi
}

/// The pool4 address and port of the outbound flow (`src6`, the source port in the high half
/// of `ports`, `proto`), made now if it has none (RFC 6146 section 3.5.1.1 for UDP, 3.5.2.2
/// for TCP, 3.5.3 for ICMP queries). `tcp_flags` is the TCP flag byte (0 for UDP and ICMP).
/// Packed as `addr4 << 16 | port4` (host order), or [`OUTBOUND_ERR`] with the reason, so that
/// the result stays one register.
#[inline(always)]
pub fn outbound(cfg: &Config, src6: &[u8; 16], ports: u32, proto: u8, tcp_flags: u8) -> u64 {
    nat64_outbound(cfg, src6, ports, proto, tcp_flags)
}

/// [`outbound`], as a *global* function (exported, so its BTF linkage is global): the kernel
/// verifies it once, on its own, for any arguments, instead of once for every verifier state
/// the translation reaches it with (some sixty, each walking the whole binding and port
/// search: a third of the 6-to-4 program's verification, and of the time to ready). The price
/// is that it may assume nothing about its arguments: the pointers are checked for null (the
/// verifier requires it), and every value is bounded where it is used. Its keys and values
/// live in the scratch slot: the BPF stack is 512 bytes over the call chain.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn nat64_outbound(
    cfg: *const Config,
    src6: *const [u8; 16],
    ports: u32,
    proto: u8,
    tcp_flags: u8,
) -> u64 {
    // SAFETY: `outbound` passes references; null only ever in the verifier's view.
    let (Some(cfg), Some(src6)) = (unsafe { cfg.as_ref() }, unsafe { src6.as_ref() }) else {
        return OUTBOUND_ERR | DropReason::Internal as u64;
    };
    // The destination port (low half), for a TCP simultaneous open (`held_port`).
    if let Ok(s) = crate::scratch::get() {
        s.remote_port = (ports as u16).to_be_bytes();
    }
    match bind(cfg, src6, (ports >> 16) as u16, proto, tcp_flags) {
        // With port blocks the block is the record (its event pushed when it was allocated).
        Ok(true) if cfg.block_size == 0 || cfg.det.enabled() => push_event(EVENT_CREATED, 0),
        Ok(_) => {}
        Err(r) => {
            // A flow refused for want of room is the operator's business; a stray TCP segment
            // with no binding is not (it would flood the binding log).
            if r != DropReason::NoBinding {
                push_event(EVENT_REFUSED, r as u8);
            }
            return OUTBOUND_ERR | r as u64;
        }
    }
    match crate::scratch::get() {
        Ok(s) => {
            ((u32::from_be_bytes(s.bib6_val.addr4) as u64) << 16)
                | u16::from_be_bytes(s.bib6_val.port4) as u64
        }
        Err(r) => OUTBOUND_ERR | r as u64,
    }
}

/// The session of the binding [`outbound`] just found or made and the remote endpoint in
/// the scratch slot (RFC 6146 sections 3.5.1.1, 3.5.2.2 and 3.5.3), made now if it has none;
/// false if there is no room for it (`DropReason::TableFull`).
///
/// Called apart from [`outbound`] (by its caller, after it returns) and not inlined: the BPF
/// stack is 512 bytes over the call chain, and `outbound`'s frame is large.
#[inline(never)]
pub fn outbound_session(cfg: &Config, proto: u8, tcp_flags: u8) -> bool {
    let Ok(s) = crate::scratch::get() else {
        return false;
    };
    s.sess_key = SessionKey {
        addr4: s.bib6_val.addr4,
        port4: s.bib6_val.port4,
        proto,
        _pad: 0,
        remote4: s.remote4,
        remote_port: if proto == BIB_ICMP {
            [0; 2]
        } else {
            s.remote_port
        },
        _pad2: [0; 2],
    };
    s.sess_flags = tcp_flags;
    let adf = if cfg.flags2 & CONFIG_F2_ADF != 0 {
        SESSION_ADF
    } else {
        0
    };
    session(SESSION_OUT | adf) == SESS_OK
}

/// What [`session`] found: go on (a session exists or was made, or a TCP segment that
/// needs none), refused by filtering, to be held (a SYN that ADF refuses), or no room.
pub const SESS_OK: u32 = 0;
pub const SESS_FILTERED: u32 = 1;
pub const SESS_HOLD: u32 = 2;
pub const SESS_FULL: u32 = 3;

/// [`session`]'s arguments, packed into one: the direction, and the filtering policy.
pub const SESSION_OUT: u32 = 1 << 0;
pub const SESSION_ADF: u32 = 1 << 1;
pub const SESSION_DROP_EXTERNAL_TCP: u32 = 1 << 2;
/// The binding is static: the operator opened it to every IPv4 host, whatever the filtering.
pub const SESSION_STATIC: u32 = 1 << 3;

/// Finds (and refreshes) or makes the session in `sess_key` in the scratch slot, for a packet
/// with TCP flags `sess_flags`, from the IPv6 side (`SESSION_OUT`) or the IPv4 side. Returns
/// one of `SESS_*`.
///
/// Its work runs as the one turn of a `bpf_loop`: verified once rather than once per path of
/// the translation. Each direction has a call of `bpf_loop` of its own: the kernel inlines a
/// `bpf_loop` call only when its callback is the same every time it runs, and `nat64_tc`,
/// which has both directions, had one call choosing between the two callbacks (a helper
/// call and an indirect call into the callback, per packet).
#[inline(always)]
pub fn session(args: u32) -> u32 {
    if args & SESSION_OUT != 0 {
        session_out(args)
    } else {
        session_in(args)
    }
}

/// [`session`] from the IPv6 side. Not inlined: verified once.
#[inline(never)]
fn session_out(args: u32) -> u32 {
    run_session_step(args, session_out_step)
}

/// [`session`] from the IPv4 side. Not inlined: verified once.
#[inline(never)]
fn session_in(args: u32) -> u32 {
    run_session_step(args, session_in_step)
}

/// One turn of `bpf_loop` over `step`; the outcome it leaves in [`SessionStep`].
#[inline(always)]
fn run_session_step(args: u32, step: extern "C" fn(u64, *mut core::ffi::c_void) -> i64) -> u32 {
    let mut state = SessionStep {
        args,
        outcome: SESS_FULL,
    };
    // SAFETY: the callbacks read and write only `state`, which outlives the call.
    unsafe {
        aya_ebpf::helpers::generated::bpf_loop(
            1,
            step as *mut core::ffi::c_void,
            &mut state as *mut SessionStep as *mut core::ffi::c_void,
            0,
        );
    }
    state.outcome
}

/// [`session`]'s state, shared with its `bpf_loop` callback.
#[repr(C)]
struct SessionStep {
    args: u32,
    outcome: u32,
}

/// Refreshes the session in `sess_key` if it exists (true): its time, and the TCP state of
/// the side the packet came from.
#[inline(always)]
fn refresh(s: &mut crate::maps::Scratch, out: bool) -> bool {
    let Some(v) = SESSIONS.get_ptr_mut(&s.sess_key) else {
        return false;
    };
    // SAFETY: a value pointer from a successful lookup, valid for this program run. Other
    // CPUs may write the same fields; each is a single store of a plain value.
    let v = unsafe { &mut *v };
    v.last_ns = s.now_ns;
    // RFC 6146 section 3.5.2.2, both sides at once (a RST's TRANS ends on the other's ACK).
    // The other side is written only when it changes: another CPU may be writing it for a
    // segment of its own (a FIN), which a copy of the old value would undo.
    if out {
        let (own, other) = tcp_step(v.tcp6, v.tcp4, s.sess_flags);
        v.tcp6 = own;
        if other != v.tcp4 {
            v.tcp4 = other;
        }
    } else {
        let (own, other) = tcp_step(v.tcp4, v.tcp6, s.sess_flags);
        v.tcp4 = own;
        if other != v.tcp6 {
            v.tcp6 = other;
        }
    }
    true
}

/// Inserts `sess_val` under `sess_key`: `SESS_OK`, or `SESS_FULL` when the preallocated table
/// has no free entry (-E2BIG). Another CPU having made the same session a moment ago is fine:
/// theirs serves.
#[inline(always)]
fn insert_session(s: &crate::maps::Scratch) -> u32 {
    match SESSIONS.insert(&s.sess_key, &s.sess_val, BPF_NOEXIST as u64) {
        Err(e) if e == -E2BIG => SESS_FULL,
        _ => SESS_OK,
    }
}

/// The peer entry of the session in `sess_key` (address-dependent filtering), into `peer`.
#[inline(always)]
fn peer_of(s: &mut crate::maps::Scratch) {
    s.peer = PeerKey {
        addr4: s.sess_key.addr4,
        port4: s.sess_key.port4,
        proto: s.sess_key.proto,
        _pad: 0,
        remote4: s.sess_key.remote4,
    };
}

/// [`session`] from the IPv6 side: RFC 6146 sections 3.5.1.1, 3.5.2.2 (V6 SYN) and 3.5.3,
/// "search for a session, else create one". Runs under `bpf_loop`.
extern "C" fn session_out_step(_i: u64, c: *mut core::ffi::c_void) -> i64 {
    // SAFETY: `c` is the `SessionStep` that `session` passed to `bpf_loop`.
    let c = unsafe { &mut *(c as *mut SessionStep) };
    let Ok(s) = crate::scratch::get() else {
        return 1;
    };
    if refresh(s, true) {
        c.outcome = SESS_OK;
        return 1;
    }
    s.sess_val = SessionValue {
        tcp6: tcp_next(0, s.sess_flags),
        tcp4: 0,
        _pad: [0; 6],
        last_ns: s.now_ns,
    };
    // RFC 6146 section 3.5.2.2, simultaneous open: an IPv4 SYN from this remote endpoint to
    // this binding's port, held (it found no binding, or address-dependent filtering refused
    // it), is the IPv4 side's opening: the session starts with both, and the held SYN is not
    // answered with an error.
    if s.sess_key.proto == BIB_TCP && is_opening(s.sess_flags) {
        s.syn_key.remote4 = s.sess_key.remote4;
        s.syn_key.pool4 = s.sess_key.addr4;
        s.syn_key.remote_port = s.sess_key.remote_port;
        s.syn_key._pad = [0; 2];
        // SAFETY: read-only lookup of a plain value, copied out.
        let held = unsafe { HELD_SYNS.get(&s.syn_key) }.map(|h| h.pool_port);
        if held == Some(s.sess_key.port4) {
            s.sess_val.tcp4 = TCP_SYN;
            let _ = HELD_SYNS.remove(&s.syn_key);
        }
    }
    c.outcome = insert_session(s);
    if c.outcome == SESS_OK && c.args & SESSION_ADF != 0 {
        peer_of(s);
        let _ = PEERS.insert(&s.peer, &s.sess_val.last_ns, 0);
    }
    1
}

/// [`session`] from the IPv4 side: the session of the sender, made if the filtering policy
/// lets it (RFC 6146 sections 3.5.1.2, 3.5.2.2 and 3.5.3; RFC 4787 section 5). Runs under
/// `bpf_loop`.
extern "C" fn session_in_step(_i: u64, c: *mut core::ffi::c_void) -> i64 {
    // SAFETY: `c` is the `SessionStep` that `session` passed to `bpf_loop`.
    let c = unsafe { &mut *(c as *mut SessionStep) };
    let Ok(s) = crate::scratch::get() else {
        return 1;
    };
    if refresh(s, false) {
        c.outcome = SESS_OK;
        return 1;
    }
    let open = s.sess_key.proto == BIB_TCP && is_opening(s.sess_flags);
    // A static binding is the operator's opening to every IPv4 host: no filtering.
    if c.args & SESSION_STATIC == 0 {
        // RFC 6146 section 3.5.2.2: "the security policy requires silently dropping
        // externally initiated TCP connections" (`drop_external_tcp`).
        if open && c.args & SESSION_DROP_EXTERNAL_TCP != 0 {
            c.outcome = SESS_FILTERED;
            return 1;
        }
        // Address-dependent filtering: only an address the client has sent to. A SYN from
        // another is held as an unsolicited one (section 3.5.2.2, for a simultaneous open
        // from the IPv6 side).
        if c.args & SESSION_ADF != 0 {
            peer_of(s);
            // SAFETY: read-only lookup of a plain value.
            if unsafe { PEERS.get(&s.peer) }.is_none() {
                c.outcome = if open { SESS_HOLD } else { SESS_FILTERED };
                return 1;
            }
        }
    }
    if s.sess_key.proto == BIB_TCP && !open {
        // RFC 6146 section 3.5.2.2, CLOSED state: a segment other than a SYN makes no
        // session; with a binding it is translated all the same (as Jool does), so that a
        // connection whose session is gone (a restart that lost it, a timeout while idle) is
        // not cut by the translator.
        c.outcome = SESS_OK;
        return 1;
    }
    s.sess_val = SessionValue {
        tcp6: 0,
        tcp4: tcp_next(0, s.sess_flags),
        _pad: [0; 6],
        last_ns: s.now_ns,
    };
    c.outcome = insert_session(s);
    1
}

/// The pool4 address of every dynamic binding of `src6`'s /64 (RFC 6888 REQ-4, RFC 4787
/// REQ-2: "paired" pooling), spread over the addresses of all prefixes. A pure function of
/// the configuration, so an IPv6 fragment without a transport header gets the same address its
/// first fragment's binding has.
#[inline(always)]
pub fn pool_address(cfg: &Config, src6: &[u8; 16]) -> [u8; 4] {
    pool_address_at(cfg, pool4_index(src6, cfg.pool4_addresses))
}

/// Deterministic mapping (RFC 7422, `nat64_common::deterministic`): the index of `src6`'s
/// client, or `u64::MAX` outside the clients' prefix.
///
/// This and [`deterministic_block`] are not inlined, and each is small enough to need (almost)
/// no stack: they sit on the deepest call chain of the 512-byte BPF stack, under `outbound`.
#[inline(never)]
fn deterministic_index(cfg: &Config, src6: &[u8; 16]) -> u64 {
    match cfg.det.client_index(src6) {
        Some(i) => i as u64,
        None => u64::MAX,
    }
}

/// The pool4 address index and port block of client `index` for `proto`, packed as
/// `addr_index << 32 | lo << 16 | hi` (one register).
#[inline(never)]
fn deterministic_block(cfg: &Config, index: u64, proto: u8) -> u64 {
    let (proto_index, range_lo) = match proto {
        BIB_TCP => (0, cfg.tcp_ports[0]),
        BIB_UDP => (1, cfg.udp_ports[0]),
        _ => (2, cfg.icmp_ids[0]),
    };
    let (addr_index, lo, hi) = cfg.det.block_of(index as u32, proto_index, range_lo);
    ((addr_index as u64) << 32) | ((lo as u64) << 16) | hi as u64
}

/// The pool4 address at `idx` over pool4's prefixes in order; zero past the last.
#[inline(always)]
fn pool_address_at(cfg: &Config, mut idx: u32) -> [u8; 4] {
    for i in 0..POOL4_MAX_PREFIXES {
        if i >= cfg.pool4_prefixes as u32 {
            break;
        }
        let Some(p) = POOL4.get(i) else {
            break;
        };
        if idx < p.count {
            return (u32::from_be_bytes(p.addr) + idx).to_be_bytes();
        }
        idx -= p.count;
    }
    [0; 4]
}

/// Records the binding of a fragmented IPv4 datagram from its first fragment, for the later
/// fragments, which carry no port (RFC 6146 section 3.4 leaves fragment handling to the
/// implementation; this one follows the datagram by its RFC 791 identity).
#[inline(always)]
pub fn remember_fragments(src4: [u8; 4], dst4: [u8; 4], id: [u8; 2], proto: u8, b: &Bib4Value) {
    let k = FragKey {
        src4,
        dst4,
        id,
        proto,
        _pad: 0,
    };
    let _ = FRAGS.insert(&k, b, 0);
}

/// The binding of a later fragment, if its first fragment came through (fragments that
/// overtake their first are dropped and counted).
#[inline(always)]
pub fn fragment_binding(
    src4: [u8; 4],
    dst4: [u8; 4],
    id: [u8; 2],
    proto: u8,
) -> Option<&'static Bib4Value> {
    let k = FragKey {
        src4,
        dst4,
        id,
        proto,
        _pad: 0,
    };
    // SAFETY: read-only lookup; the value lives in map memory for this program run.
    unsafe { FRAGS.get(&k) }
}

/// Records the pool4 address of an IPv6 datagram's binding from its first fragment, for the
/// later fragments (see [`fragment_source6`]).
#[inline(always)]
pub fn remember_fragments6(src6: &[u8; 16], dst4: [u8; 4], id: [u8; 2], proto: u8, a: [u8; 4]) {
    let _ = FRAGS6.insert(&frag6_key(src6, dst4, id, proto), &a, 0);
}

/// The `FRAGS6` key of an IPv6 datagram (its source, the IPv4 destination it translates to,
/// the low half of its identification, its protocol).
#[inline(always)]
fn frag6_key(src6: &[u8; 16], dst4: [u8; 4], id: [u8; 2], proto: u8) -> Frag6Key {
    let mut k = Frag6Key {
        src6: [0; 16],
        dst4,
        id,
        proto,
        _pad: 0,
    };
    crate::packet::copy_addr6(&mut k.src6, src6);
    k
}

/// The IPv4 source of a later IPv6 fragment, which has no port: its first fragment's binding
/// address, recorded by [`remember_fragments6`]; for one that overtook its first fragment, the
/// address every dynamic binding of its /64 has (RFC 6888 REQ-4's paired pooling), which is
/// right unless the binding is static or deterministic (the datagram is then lost, as one
/// whose IPv4 fragment overtakes its first is).
#[inline(always)]
pub fn fragment_source6(
    cfg: &Config,
    src6: &[u8; 16],
    dst4: [u8; 4],
    id: [u8; 2],
    proto: u8,
) -> [u8; 4] {
    let k = frag6_key(src6, dst4, id, proto);
    // SAFETY: read-only lookup of a plain value, copied out.
    match unsafe { FRAGS6.get(&k) } {
        Some(a) => *a,
        None => pool_address(cfg, src6),
    }
}

/// Marks an error in [`outbound`]'s result; the low bits hold the `DropReason`.
pub const OUTBOUND_ERR: u64 = 1 << 63;

/// Pushes a binding event for the binding in the scratch slot (`bib6_key`, `bib6_val`) to the
/// daemon (`EVENTS`), built in the slot (no stack). A full ring buffer loses it, counted.
/// Inlined: a call of its own would deepen the deepest call chain past the 512-byte stack.
#[inline(always)]
fn push_event(kind: u8, reason: u8) {
    let Ok(s) = crate::scratch::get() else {
        return;
    };
    let created = kind == EVENT_CREATED;
    s.event = BindingEvent {
        // SAFETY: plain helper call.
        time_ns: unsafe { bpf_ktime_get_coarse_ns() },
        kind,
        proto: s.bib6_key.proto,
        reason,
        _pad: 0,
        port6: s.bib6_key.port6,
        port4: if created { s.bib6_val.port4 } else { [0; 2] },
        addr6: s.bib6_key.addr6,
        addr4: if created { s.bib6_val.addr4 } else { [0; 4] },
        port_end: [0; 2],
        _pad2: [0; 2],
    };
    if EVENTS.output::<BindingEvent>(&s.event, 0).is_err() {
        crate::stats::add(nat64_common::Counter::EventsLost, 1);
    }
}

/// Pushes the event of the port block just allocated (`block_key`, `block_owner` and the
/// search's block at hand in the scratch slot): the client's /64, the pool4 address and the
/// block's first and last port. Inlined, like [`push_event`].
#[inline(always)]
fn push_block_event(s: &mut crate::maps::Scratch) {
    let c = s.block_owner.client;
    s.event = BindingEvent {
        time_ns: s.block_owner.since_ns,
        kind: EVENT_BLOCK,
        proto: s.block_key.proto,
        reason: 0,
        _pad: 0,
        port6: [0; 2],
        port4: (s.tries.cur_lo as u16).to_be_bytes(),
        addr6: [
            c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], 0, 0, 0, 0, 0, 0, 0, 0,
        ],
        addr4: s.block_key.addr4,
        port_end: (s.tries.cur_hi as u16).to_be_bytes(),
        _pad2: [0; 2],
    };
    if EVENTS.output::<BindingEvent>(&s.event, 0).is_err() {
        crate::stats::add(nat64_common::Counter::EventsLost, 1);
    }
}

/// Finds or makes the binding; on success `bib6_val` in the scratch slot holds it, and the
/// result says whether this call made it.
#[inline(always)]
fn bind(
    cfg: &Config,
    src6: &[u8; 16],
    port6: u16,
    proto: u8,
    tcp_flags: u8,
) -> Result<bool, DropReason> {
    let s = crate::scratch::get()?;
    crate::packet::copy_addr6(&mut s.bib6_key.addr6, src6);
    s.bib6_key.port6 = port6.to_be_bytes();
    s.bib6_key.proto = proto;
    s.bib6_key._pad = 0;
    // SAFETY: plain helper call.
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    s.now_ns = now;
    if let Some(v) = BIB6.get_ptr_mut(&s.bib6_key) {
        // SAFETY: a value pointer from a successful lookup, valid for this program run. Other
        // CPUs may write the same fields; each is a single store of a plain value.
        let v = unsafe { &mut *v };
        v.last_ns = now;
        s.bib6_val = *v;
        return Ok(false);
    }
    // RFC 6146 section 3.5.2.2, CLOSED state: a TCP segment other than a SYN "is silently
    // discarded" when it has no binding (a stray ACK or RST must not take a pool4 port).
    if proto == BIB_TCP && !is_opening(tcp_flags) {
        return Err(DropReason::NoBinding);
    }
    // From here on the address is read back from the slot, not kept in registers: across the
    // helper calls below they would be spilled to the stack, which has no room left.
    // RFC 6888 REQ-4: a /64 may hold only so many bindings.
    s.client = client_key(&s.bib6_key.addr6);
    if cfg.per_client_limit != 0 {
        // SAFETY: read-only lookup of a plain value, copied out.
        let held = unsafe { CLIENTS.get(&s.client) }.copied().unwrap_or(0);
        if held >= cfg.per_client_limit as u64 {
            return Err(DropReason::ClientLimit);
        }
    }
    let [mut lo, mut hi] = match proto {
        BIB_TCP => cfg.tcp_ports,
        BIB_UDP => cfg.udp_ports,
        _ => cfg.icmp_ids,
    };
    let addr4 = if cfg.det.enabled() {
        // RFC 7422: the client's address and port block follow from the configuration.
        // A source outside the clients' prefix has none: refused.
        let index = deterministic_index(cfg, &s.bib6_key.addr6);
        if index == u64::MAX {
            return Err(DropReason::PoolExhausted);
        }
        let b = deterministic_block(cfg, index, proto);
        lo = (b >> 16) as u16;
        hi = b as u16;
        pool_address_at(cfg, (b >> 32) as u32)
    } else {
        pool_address(cfg, &s.bib6_key.addr6)
    };
    if addr4 == [0; 4] {
        return Err(DropReason::PoolExhausted);
    }
    s.bib4_key.addr4 = addr4;
    s.bib4_key.port4 = [0; 2];
    s.bib4_key.proto = proto;
    s.bib4_key._pad = 0;
    crate::packet::copy_addr6(&mut s.bib4_val.addr6, &s.bib6_key.addr6);
    s.bib4_val.port6 = s.bib6_key.port6;
    s.bib4_val.tcp = 0;
    s.bib4_val.flags = 0;
    s.bib4_val._pad = [0; 4];
    s.bib4_val.last_ns = 0;
    s.bib6_val.addr4 = addr4;
    s.bib6_val.port4 = [0; 2];
    s.bib6_val.tcp = tcp_next(0, tcp_flags);
    s.bib6_val.flags = 0;
    s.bib6_val.last_ns = now;
    start_search(cfg, ((lo as u32) << 16) | hi as u32, port6);
    // SAFETY: `try_port` reads and writes only the scratch slot.
    unsafe {
        aya_ebpf::helpers::generated::bpf_loop(
            SEARCH_STEPS,
            try_port as *mut core::ffi::c_void,
            core::ptr::null_mut(),
            0,
        );
    }
    match s.tries.outcome {
        TRY_BOUND => {
            count_client(&s.client);
            Ok(true)
        }
        TRY_RACE => {
            // Another CPU bound the same flow a moment ago (or the table is full): theirs.
            // SAFETY: read-only lookup of a plain value, copied out.
            match unsafe { BIB6.get(&s.bib6_key) } {
                Some(v) => {
                    s.bib6_val = *v;
                    Ok(false)
                }
                None => Err(DropReason::PoolExhausted),
            }
        }
        TRY_FULL => Err(DropReason::TableFull),
        _ => Err(DropReason::PoolExhausted),
    }
}

/// Sets up the search for a new binding's port ([`try_port`]) over the range `lo..=hi`
/// (`range` packed as `lo << 16 | hi`): the client's port blocks (`stateful.port_block_size`)
/// or one block that is the whole range (or the deterministic block).
///
/// Not inlined, and field by field: `outbound`'s frame is on the deepest call chain of the
/// 512-byte BPF stack, and this one sits where `try_port` does, one call below it.
#[inline(never)]
fn start_search(cfg: &Config, range: u32, port6: u16) {
    let Ok(s) = crate::scratch::get() else {
        return;
    };
    let (lo, hi) = (range >> 16, range & 0xffff);
    let span = hi - lo + 1;
    let t = &mut s.tries;
    t.base = lo;
    // SAFETY: plain helper call.
    t.start = unsafe { bpf_get_prandom_u32() };
    t.port6 = port6;
    t.outcome = TRY_NONE;
    t.last = 0;
    t.left = 0;
    t.visited = 0;
    t.fresh = 0;
    if cfg.block_size == 0 || cfg.det.enabled() {
        t.size = span;
        t.blocks = 1;
        t.per_block = PORT_TRIES as u16;
        t.max = 1;
        t.alloc_left = 0;
        s.blocks.count = 1;
        s.blocks.index[0] = 0;
        return;
    }
    // Port blocks: the client's blocks on its address, then new ones as they fill up.
    let size = cfg.block_size as u32;
    let blocks = span / size;
    t.size = size;
    t.blocks = blocks;
    // One parity's worth of each block (RFC 6056 section 3.3.2's sequential search, in the
    // block), so that a small block is searched through before another is allocated; but no
    // more than `BLOCK_TRIES`, so that a /64 whose blocks are all full costs at most
    // `MAX_CLIENT_BLOCKS * BLOCK_TRIES` failed inserts per refused flow (twice a full pool's).
    t.per_block = size.div_ceil(2).min(BLOCK_TRIES) as u16;
    t.max = cfg.max_blocks.min(MAX_CLIENT_BLOCKS as u16) as u8;
    t.alloc_left = blocks.min(ALLOC_TRIES) as u8;
    s.blocks_key.client = s.client;
    s.blocks_key.proto = s.bib4_key.proto;
    s.blocks_key._pad = [0; 3];
    let addr4 = s.bib4_key.addr4;
    match CLIENT_BLOCKS.get_ptr(&s.blocks_key) {
        // SAFETY: a value pointer from a successful lookup, valid for this program run.
        Some(b) if unsafe { (*b).addr4 } == addr4 => {
            // SAFETY: as above.
            let b = unsafe { &*b };
            s.blocks.count = b.count.min(MAX_CLIENT_BLOCKS as u8);
            s.blocks.index = b.index;
        }
        // None yet, or blocks on another address (pool4 changed since): new ones here.
        _ => s.blocks.count = 0,
    }
    s.blocks.addr4 = addr4;
    s.blocks._pad = [0; 3];
}

/// The search for a new binding's port ([`try_port`]), in the scratch slot (the stack has no
/// room for it): the blocks it looks in (the client's port blocks, or one block that is the
/// whole range), the block at hand and the port tried last.
#[repr(C)]
pub struct Tries {
    /// The bottom of the protocol's range (or of the deterministic block), ports per block,
    /// and the blocks of the range (for allocating one).
    pub base: u32,
    pub size: u32,
    pub blocks: u32,
    /// A random value: where the search starts, among the blocks and in the range.
    pub start: u32,
    /// The block at hand.
    pub cur_lo: u32,
    pub cur_hi: u32,
    pub port6: u16,
    pub outcome: u16,
    /// The port tried last.
    pub last: u16,
    /// Tries left in the block at hand, and how many a block gets.
    pub left: u16,
    pub per_block: u16,
    /// How many of the client's blocks were searched; the most it may hold; block
    /// allocations left to try.
    pub visited: u8,
    pub max: u8,
    pub alloc_left: u8,
    /// The next try is the first in its block: a random port, not the one after the last.
    pub fresh: u8,
}
const TRY_NONE: u16 = 0;
const TRY_BOUND: u16 = 1;
const TRY_RACE: u16 = 2;
const TRY_FULL: u16 = 3;
/// The errno a full preallocated hash map answers an insert with.
const E2BIG: i32 = 7;
/// Port blocks: the most tries in one block, and the most blocks tried for an allocation.
const BLOCK_TRIES: u32 = 16;
const ALLOC_TRIES: u32 = 64;
/// The most steps of the search: every try in every block a client may hold, the block
/// allocations, and the tries in the new block. The search ends as soon as it is decided.
const SEARCH_STEPS: u32 = (MAX_CLIENT_BLOCKS as u32 + 1) * BLOCK_TRIES + ALLOC_TRIES;

/// What [`next_block`] found: a block to try ports in, a block allocation that failed (the
/// next step tries another), or nowhere left to look.
const NEXT_READY: u8 = 0;
const NEXT_AGAIN: u8 = 1;
const NEXT_NONE: u8 = 2;

/// Moves the search to its next block: the next of the client's blocks not searched yet, else
/// (port blocks, while the client holds fewer than it may) a new block allocated now, one
/// allocation try per step. A block is allocated by inserting it into `BLOCKS` (`BPF_NOEXIST`:
/// a block has one owner), starting at a random block and going on in order.
#[inline(never)]
fn next_block(s: &mut crate::maps::Scratch) -> u8 {
    let t = &mut s.tries;
    let count = s.blocks.count;
    if t.visited < count {
        let b = (t.start + t.visited as u32) % count as u32;
        t.visited += 1;
        let index = s.blocks.index[(b as usize) & (MAX_CLIENT_BLOCKS - 1)] as u32;
        t.cur_lo = t.base + index * t.size;
        t.cur_hi = t.cur_lo + t.size - 1;
        t.left = t.per_block;
        t.fresh = 1;
        return NEXT_READY;
    }
    if count >= t.max || t.alloc_left == 0 || t.blocks == 0 {
        return NEXT_NONE;
    }
    t.alloc_left -= 1;
    let index = (t.start.wrapping_add(t.alloc_left as u32)) % t.blocks;
    let first = t.base + index * t.size;
    let size = t.size;
    s.block_key = BlockKey {
        addr4: s.blocks.addr4,
        proto: s.bib4_key.proto,
        _pad: 0,
        index: index as u16,
    };
    s.block_owner = BlockOwner {
        client: s.client,
        // SAFETY: plain helper call.
        since_ns: unsafe { bpf_ktime_get_coarse_ns() },
        flags: 0,
        _pad: 0,
        first: first as u16,
        size: size as u16,
        _pad2: [0; 2],
    };
    if BLOCKS
        .insert(&s.block_key, &s.block_owner, BPF_NOEXIST as u64)
        .is_err()
    {
        return NEXT_AGAIN;
    }
    s.blocks.index[(count as usize) & (MAX_CLIENT_BLOCKS - 1)] = index as u16;
    s.blocks.count = count + 1;
    let _ = CLIENT_BLOCKS.insert(&s.blocks_key, &s.blocks, 0);
    let t = &mut s.tries;
    t.visited = count + 1;
    t.cur_lo = first;
    t.cur_hi = t.cur_lo + t.size - 1;
    t.left = t.per_block;
    t.fresh = 1;
    push_block_event(s);
    NEXT_READY
}

/// One step of a new binding's search for a port (RFC 6056 section 3.3.2: a random start in a
/// block, then the next ports of the same parity). Runs under `bpf_loop`, verified once. The
/// insert into BIB4 is the allocation: it fails when the port is taken (or held down, or the
/// table is full), and the next candidate is tried.
extern "C" fn try_port(i: u64, _c: *mut core::ffi::c_void) -> i64 {
    let Ok(s) = crate::scratch::get() else {
        return 1;
    };
    if s.tries.left == 0 {
        match next_block(s) {
            NEXT_READY => {}
            NEXT_AGAIN => return 0,
            _ => return 1,
        }
    }
    let (lo, hi) = (s.tries.cur_lo as u16, s.tries.cur_hi as u16);
    // RFC 6146 section 3.5.2.2, simultaneous open: an IPv4 SYN from the host this SYN goes
    // to, held because it found no binding, gives the new binding its pool4 port, so that
    // both SYNs belong to one connection (if the port is in the block at hand).
    // (A new TCP binding whose IPv6 side is at `TCP_SYN` was made by a SYN.)
    let held = if i == 0 && s.bib4_key.proto == BIB_TCP && s.bib6_val.tcp == TCP_SYN {
        held_port(s)
    } else {
        0
    };
    let t = &mut s.tries;
    let port = if held != 0 && lo <= held && held <= hi {
        held
    } else if t.fresh != 0 {
        // SAFETY: plain helper call.
        let random = unsafe { bpf_get_prandom_u32() };
        candidate_port(random, lo, hi, t.port6)
    } else {
        next_candidate(t.last, lo, hi)
    };
    t.fresh = 0;
    t.left -= 1;
    t.last = port;
    let port4 = port.to_be_bytes();
    s.bib4_key.port4 = port4;
    if let Err(e) = BIB4.insert(&s.bib4_key, &s.bib4_val, BPF_NOEXIST as u64) {
        // -E2BIG: the preallocated table has no free entry; no other port will fare better.
        if e == -E2BIG {
            s.tries.outcome = TRY_FULL;
            return 1;
        }
        return 0;
    }
    s.bib6_val.port4 = port4;
    if BIB6
        .insert(&s.bib6_key, &s.bib6_val, BPF_NOEXIST as u64)
        .is_ok()
    {
        s.tries.outcome = TRY_BOUND;
    } else {
        let _ = BIB4.remove(&s.bib4_key);
        s.tries.outcome = TRY_RACE;
    }
    1
}

/// One more binding for the /64 `client`. A plain add: the BPF target has no atomic
/// read-modify-write in stable Rust, and a count lost to two CPUs adding at once is restored
/// by the daemon's sweeper, which recounts every /64 from the binding table on each pass.
#[inline(always)]
fn count_client(client: &[u8; 8]) {
    match CLIENTS.get_ptr_mut(client) {
        // SAFETY: a value pointer from a successful lookup, valid for this program run.
        Some(n) => unsafe { *n += 1 },
        None => {
            let _ = CLIENTS.insert(client, &1, 0);
        }
    }
}

/// The binding of an inbound packet to pool4 address `dst4`, port (or ICMP identifier)
/// `port4`, or `None`: RFC 6146 sections 3.5.1 to 3.5.3 drop what matches no binding.
/// Whether the sender may use it is the session's question ([`session`]); the caller
/// refreshes it ([`Bib4Value::last_ns`], from `Scratch::now_ns`, set here) once the session
/// lets the packet through: a sender the filtering refuses must not keep it alive.
#[inline(always)]
pub fn inbound(dst4: [u8; 4], port4: [u8; 2], proto: u8) -> Option<&'static mut Bib4Value> {
    let k4 = Bib4Key {
        addr4: dst4,
        port4,
        proto,
        _pad: 0,
    };
    let v = BIB4.get_ptr_mut(&k4)?;
    // SAFETY: a value pointer from a successful lookup, valid for this program run.
    let v = unsafe { &mut *v };
    // Expired, its port held down (RFC 6888 REQ-8): there is no binding any more.
    if v.flags & BIB_F_HELD != 0 {
        return None;
    }
    // SAFETY: plain helper call.
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    // For the session (`session_in_step`) and the binding's refresh: one read of the clock
    // per packet.
    if let Ok(s) = crate::scratch::get() {
        s.now_ns = now;
    }
    Some(v)
}

/// The binding of pool4 transport address (`addr4`, `port4`, `proto`) without touching it:
/// for an ICMP error that quotes a packet the binding sent (RFC 6146 section 3.5 applies the
/// binding to the quoted packet; an error does not keep a binding alive).
#[inline(always)]
pub fn lookup4(addr4: [u8; 4], port4: [u8; 2], proto: u8) -> Option<&'static Bib4Value> {
    let k4 = Bib4Key {
        addr4,
        port4,
        proto,
        _pad: 0,
    };
    // SAFETY: read-only lookup; the value lives in map memory for this program run.
    unsafe { BIB4.get(&k4) }.filter(|v| v.flags & BIB_F_HELD == 0)
}

/// Whether TCP flags open a connection: a SYN without ACK or RST (RFC 6146 section 3.5.2.2's
/// "V4 SYN" and "V6 SYN").
#[inline(always)]
pub fn is_opening(tcp_flags: u8) -> bool {
    tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK | TCP_FLAG_RST) == TCP_FLAG_SYN
}

/// The pool4 port of a SYN held from the IPv4 host a new TCP binding opens a connection to
/// (`remote4` and `remote_port` in the scratch slot), on the binding's pool4 address
/// (`bib4_key`), or 0. The session the SYN opens takes the held SYN (`session_step`).
#[inline(always)]
fn held_port(s: &mut crate::maps::Scratch) -> u16 {
    s.syn_key.remote4 = s.remote4;
    s.syn_key.pool4 = s.bib4_key.addr4;
    s.syn_key.remote_port = s.remote_port;
    s.syn_key._pad = [0; 2];
    // SAFETY: read-only lookup of a plain value, copied out.
    unsafe { HELD_SYNS.get(&s.syn_key) }.map_or(0, |h| u16::from_be_bytes(h.pool_port))
}

/// Holds the IPv4 TCP SYN of this frame, which found no binding at pool4 port `port4` (RFC
/// 6146 section 3.5.2.2): the daemon answers it with ICMP Port Unreachable after 6 seconds
/// unless a simultaneous open takes it first. Its first `HELD_SYN_BYTES` are kept, for that
/// error's quote. A SYN already held (a retransmission) or one finding the table full is
/// dropped all the same, as Jool does; either way the packet counts as `UnsolicitedSyn`.
///
/// Not inlined: its frame is its own, and the verifier sees it once per caller path.
#[inline(never)]
pub fn hold_syn(ctx: &impl Frame, l4_off: usize, port4: [u8; 2]) -> DropReason {
    let Ok(s) = crate::scratch::get() else {
        return DropReason::UnsolicitedSyn;
    };
    let Some(h) = crate::packet::read::<[u8; 20]>(ctx, ETH_LEN) else {
        return DropReason::UnsolicitedSyn;
    };
    let Some(sport) = crate::packet::read::<[u8; 2]>(ctx, l4_off & 0x7f) else {
        return DropReason::UnsolicitedSyn;
    };
    s.syn_key.remote4 = [h[12], h[13], h[14], h[15]];
    s.syn_key.pool4 = [h[16], h[17], h[18], h[19]];
    s.syn_key.remote_port = sport;
    s.syn_key._pad = [0; 2];
    s.held.pool_port = port4;
    let ip_len = u16::from_be_bytes([h[2], h[3]]) as u32;
    let room = ctx.len().saturating_sub(ETH_LEN) as u32;
    let mut n = if ip_len < room { ip_len } else { room };
    if n > HELD_SYN_BYTES as u32 {
        n = HELD_SYN_BYTES as u32;
    }
    // Read back through a volatile load, so that the compiler cannot fold the bounds check
    // into the computation above: the verifier must see 1 <= n <= HELD_SYN_BYTES right here.
    // SAFETY: a read of a local.
    let n = unsafe { core::ptr::read_volatile(&n) };
    if n == 0 || n > HELD_SYN_BYTES as u32 {
        return DropReason::UnsolicitedSyn;
    }
    // SAFETY: plain helper call.
    s.held.since_ns = unsafe { bpf_ktime_get_coarse_ns() };
    s.held.len = n as u16;
    s.held._pad = [0; 4];
    if ctx.load_into(ETH_LEN as u32, s.held.packet.as_mut_ptr(), n) == 0 {
        let _ = HELD_SYNS.insert(&s.syn_key, &s.held, BPF_NOEXIST as u64);
    }
    DropReason::UnsolicitedSyn
}

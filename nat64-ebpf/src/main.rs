//! The translator's XDP entry point.
//!
//! One translation core serves every attached interface and both directions: IPv6 frames go
//! through the 6-to-4 path, IPv4 frames through the 4-to-6 path, everything else is passed
//! untouched. Four entry points:
//!
//! - `nat64_xdp`, the fast path on the interfaces traffic arrives on: a translated packet is
//!   handed back to the kernel (`XDP_PASS`) so that routing, netfilter and Kubernetes service
//!   handling still apply to it;
//! - `nat64_link`, the same core on the far end of the translator link (see `link`), for what
//!   the kernel routes there: what the fast path handed off, and traffic this node originates;
//! - `nat64_return`, on the kernel's end of that link: it gives the veth the NAPI context that
//!   `XDP_TX` from the far end needs, and sends hairpinned packets to a shared pool4 address
//!   back in (`nat64_pass` does nothing at all: the benchmarks' floor, the tests' neighbours);
//! - `nat64_tc`, the fast path again, at the TC ingress hook instead of XDP (see `tc`): it sees
//!   GSO packets whole, which XDP on a veth makes the kernel give up.
//!
//! Built for the host (as by `cargo build --workspace` or clippy), this is an empty program:
//! the dataplane exists only for the BPF target.
#![cfg_attr(target_arch = "bpf", no_std, no_main)]

#[cfg(target_arch = "bpf")]
mod addrmap;
#[cfg(target_arch = "bpf")]
mod egress;
#[cfg(target_arch = "bpf")]
mod extension;
#[cfg(target_arch = "bpf")]
mod forward;
#[cfg(target_arch = "bpf")]
mod frame;
#[cfg(target_arch = "bpf")]
mod hairpin;
#[cfg(target_arch = "bpf")]
mod icmp_error;
#[cfg(target_arch = "bpf")]
mod iface;
#[cfg(target_arch = "bpf")]
mod l4;
#[cfg(target_arch = "bpf")]
mod link;
#[cfg(target_arch = "bpf")]
mod maps;
#[cfg(target_arch = "bpf")]
mod packet;
#[cfg(target_arch = "bpf")]
mod proto;
#[cfg(target_arch = "bpf")]
mod ratelimit;
#[cfg(target_arch = "bpf")]
mod rfc6791;
#[cfg(target_arch = "bpf")]
mod scratch;
#[cfg(target_arch = "bpf")]
mod stateful;
#[cfg(target_arch = "bpf")]
mod stats;
#[cfg(target_arch = "bpf")]
mod tc;
#[cfg(target_arch = "bpf")]
mod too_big;
#[cfg(target_arch = "bpf")]
mod unreachable;
#[cfg(target_arch = "bpf")]
mod v4_to_v6;
#[cfg(target_arch = "bpf")]
mod v6_to_v4;

#[cfg(target_arch = "bpf")]
use aya_ebpf::{
    bindings::xdp_action,
    macros::{classifier, xdp},
    programs::{TcContext, XdpContext},
};
#[cfg(target_arch = "bpf")]
use frame::Frame;
#[cfg(target_arch = "bpf")]
use nat64_common::{Counter, Dir, DropReason, Handoff, maps::Config};

#[cfg(not(target_arch = "bpf"))]
fn main() {
    eprintln!("nat64-ebpf is an eBPF object; nat64d embeds and loads it");
}

/// The fast path: a dispatcher that tail-calls the direction's program (`maps::PROGS`). Each
/// direction is a program of its own so that the verifier checks each against its own
/// million instructions (the full core, both directions in one, came within 6% of it).
#[cfg(target_arch = "bpf")]
#[xdp]
pub fn nat64_xdp(ctx: XdpContext) -> u32 {
    // Not addressed to this node as a router (see `packet::to_group_address`).
    if packet::to_group_address(&ctx) {
        return xdp_action::XDP_PASS;
    }
    dispatch(&ctx, maps::PROG_XDP_6TO4, maps::PROG_XDP_4TO6);
    // Neither IPv4 nor IPv6; or no program in the slot (the daemon fills them before it
    // attaches anything): nothing is ours yet.
    xdp_action::XDP_PASS
}

/// IPv6 to IPv4, tail-called by both dispatchers: `nat64_xdp` (the fast path) and
/// `nat64_link` (the far end of the translator link).
#[cfg(target_arch = "bpf")]
#[xdp]
pub fn nat64_xdp_6to4(ctx: XdpContext) -> u32 {
    match config() {
        Ok(cfg) => match run6(&ctx, cfg) {
            AGAIN_4TO6 => again_4to6(&ctx, cfg),
            action => action,
        },
        Err(action) => action,
    }
}

/// What `run6` returns for a hairpinned ICMPv6 error it translated to IPv4 (see
/// `Scratch::hairpin_error`): not an XDP action; `nat64_xdp_6to4` sends it on to 4-to-6.
#[cfg(target_arch = "bpf")]
const AGAIN_4TO6: u32 = 0x4000;

/// The second half of a hairpinned ICMP error (RFC 7757 section 4): the frame, an IPv4 error
/// now, goes through the 4-to-6 program of the same dispatcher (a tail call, with the link's
/// mark set again when it came through the link), which translates it to the IPv6 host the
/// IPv4 destination stands for, as an error from the IPv4 side would be.
#[cfg(target_arch = "bpf")]
#[inline(always)]
fn again_4to6(ctx: &XdpContext, cfg: &Config) -> u32 {
    let on_link = link::on_link(cfg);
    maps::set_mark(maps::MARK_AGAIN | u32::from(on_link));
    // One call site per slot, constant indices (see `dispatch`).
    if on_link {
        // SAFETY: the context is this program's; on success control does not come back.
        unsafe { maps::PROGS.tail_call(ctx, maps::PROG_LINK_4TO6) };
        core::hint::black_box(maps::PROG_LINK_4TO6);
    } else {
        // SAFETY: as above.
        unsafe { maps::PROGS.tail_call(ctx, maps::PROG_XDP_4TO6) };
    }
    // Only here when the slot is empty, which the daemon never leaves it.
    maps::set_mark(0);
    stats::add(Counter::Dropped(Dir::V6ToV4, DropReason::Internal), 1);
    xdp_action::XDP_DROP
}

/// IPv4 to IPv6, tail-called by both dispatchers.
#[cfg(target_arch = "bpf")]
#[xdp]
pub fn nat64_xdp_4to6(ctx: XdpContext) -> u32 {
    match config() {
        Ok(cfg) => run4(&ctx, cfg),
        Err(action) => action,
    }
}

/// The configuration a direction program runs with: the fast path's, or for a frame that
/// `nat64_link` dispatched (it sets `maps::MARK_LINK` in `maps::LINKMARK`, cleared here) the
/// link's (`CONFIG_F_ON_LINK` set); for the second half of a hairpinned error (`again_4to6`
/// adds `maps::MARK_AGAIN`) the same with `CONFIG_F_HAIRPIN_IN`. The mark names the slot. One
/// program serves both dispatchers, so the kernel verifies each direction once: the
/// configurations are values of one map, and the verifier's states after the choice are the
/// same. Used in place in the map: a copy would take 120 bytes of the 512-byte stack. Until
/// the daemon has written it nothing is ours (the fast path passes, the link drops).
#[cfg(target_arch = "bpf")]
#[inline(always)]
fn config() -> Result<&'static Config, u32> {
    // Branch-free up to the lookup, so that the verifier walks one path on from here, not
    // one per configuration.
    let mark = match maps::LINKMARK.get_ptr_mut(0) {
        // SAFETY: this CPU's slot; the dispatcher and the program it tail-called are one run
        // on this CPU (XDP runs to completion).
        Some(m) => unsafe {
            let v = *m;
            *m = 0;
            v
        },
        None => 0,
    };
    let slot = mark & (maps::MARK_LINK | maps::MARK_AGAIN);
    use nat64_common::maps::{CONFIG_SLOT_FAST_PATH_HAIRPIN, CONFIG_SLOT_LINK_HAIRPIN};
    const _: () = assert!(
        maps::CONFIG_FAST_PATH == 0
            && maps::CONFIG_LINK == maps::MARK_LINK
            && CONFIG_SLOT_FAST_PATH_HAIRPIN == maps::MARK_AGAIN
            && CONFIG_SLOT_LINK_HAIRPIN == maps::MARK_LINK | maps::MARK_AGAIN
    );
    maps::CONFIG
        .get(slot)
        .ok_or(if slot & maps::MARK_LINK != 0 {
            xdp_action::XDP_DROP
        } else {
            xdp_action::XDP_PASS
        })
}

/// The far end of the translator link: a dispatcher, as `nat64_xdp`, into the same direction
/// programs (the daemon fills the link's slots with them), telling them the frame is the
/// link's (`maps::MARK_LINK`).
#[cfg(target_arch = "bpf")]
#[xdp]
pub fn nat64_link(ctx: XdpContext) -> u32 {
    // What the fast path sent under the alias of a shared pool4 address gets it back.
    if !link::from_alias(&ctx) {
        return xdp_action::XDP_DROP;
    }
    maps::set_mark(maps::MARK_LINK);
    let ip = dispatch(&ctx, maps::PROG_LINK_6TO4, maps::PROG_LINK_4TO6);
    // Only here when no program ran: the next frame on this CPU is not the link's.
    maps::set_mark(0);
    if ip {
        // IP with no program in the slot: the daemon has not set the link up yet.
        return xdp_action::XDP_DROP;
    }
    xdp_action::XDP_PASS
}

/// Tail-calls the program for the frame's family: `v6` for IPv6, `v4` for IPv4. Returns only
/// for other frames, which are not ours (false), or when the slot is empty (true).
#[cfg(target_arch = "bpf")]
#[inline(always)]
fn dispatch(ctx: &XdpContext, v6: u32, v4: u32) -> bool {
    // One call site per slot, each with a constant index: the JIT then patches a direct jump
    // into the program (no indirect branch, no retpoline), measured 10-15 ns a packet less
    // than one call site with the index chosen before it.
    match packet::ethertype(ctx) {
        Some(packet::ETH_P_IPV6) => {
            // SAFETY: the context is this program's; on success control does not come back.
            unsafe { maps::PROGS.tail_call(ctx, v6) };
            // Different code after each call keeps the compiler from merging the two.
            core::hint::black_box(v6);
        }
        Some(packet::ETH_P_IP) => {
            // SAFETY: as above.
            unsafe { maps::PROGS.tail_call(ctx, v4) };
        }
        _ => return false,
    }
    true
}

#[cfg(target_arch = "bpf")]
#[xdp]
pub fn nat64_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

/// The kernel's end of the translator link: gives the veth the NAPI context that `XDP_TX` from
/// the far end needs, and sends back into the link what the far end translated toward a
/// pool4 address the node shares (stateful hairpinning that went through the kernel), which
/// the kernel would deliver locally (`link::bounce`).
#[cfg(target_arch = "bpf")]
#[xdp]
pub fn nat64_return(ctx: XdpContext) -> u32 {
    match maps::CONFIG.get(maps::CONFIG_LINK) {
        Some(cfg) => link::bounce(&ctx, cfg),
        None => xdp_action::XDP_PASS,
    }
}

#[cfg(target_arch = "bpf")]
#[classifier]
pub fn nat64_tc(ctx: TcContext) -> i32 {
    // The fast path's configuration, as for `nat64_xdp`.
    let Some(cfg) = maps::CONFIG.get(maps::CONFIG_FAST_PATH) else {
        return tc::PASS;
    };
    // Not addressed to this node as a router (see `packet::to_group_address`).
    if packet::to_group_address(&ctx) || !tc::pull_headers(&ctx) {
        return tc::PASS;
    }
    tc::complete_sum_before(&ctx);
    let action = run(&ctx, cfg);
    if action == xdp_action::XDP_PASS || action == forward::TC_FORWARDED {
        tc::complete_sum_after(&ctx);
    }
    tc::verdict(&ctx, action, cfg)
}

/// The daemon's way to hand the kernel a packet it made (`Dataplane::inject`: the Port
/// Unreachable of a held SYN). Never attached: the daemon runs it with `BPF_PROG_TEST_RUN` on
/// a frame whose context names an interface (`__sk_buff.ifindex`), and it sends a copy of the
/// frame into that interface's receive path (`bpf_clone_redirect` with `BPF_F_INGRESS`), where
/// the kernel routes it like any packet that arrived there. It needs no privilege the
/// dataplane does not (a raw socket would need CAP_NET_RAW); XDP's live-frame mode did the
/// same but is refused (EPERM) on some kernels. Returns 0, or the helper's error.
#[cfg(target_arch = "bpf")]
#[classifier]
pub fn nat64_inject(ctx: TcContext) -> i32 {
    // SAFETY: a field of this program's own context.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    match ctx.clone_redirect(ifindex, aya_ebpf::bindings::BPF_F_INGRESS as u64) {
        Ok(()) => 0,
        Err(e) => e as i32,
    }
}

/// The translation core over either context; the verdict is an XDP action (`tc::verdict`
/// maps it for TC). The XDP programs run one direction each (`run6`, `run4`).
#[cfg(target_arch = "bpf")]
#[inline(always)]
fn run<C: Frame>(ctx: &C, cfg: &Config) -> u32 {
    match packet::ethertype(ctx) {
        Some(packet::ETH_P_IPV6) => run6(ctx, cfg),
        Some(packet::ETH_P_IP) => run4(ctx, cfg),
        _ => xdp_action::XDP_PASS,
    }
}

/// IPv6 to IPv4: the translation and what follows it.
#[cfg(target_arch = "bpf")]
#[inline(always)]
fn run6<C: Frame>(ctx: &C, cfg: &Config) -> u32 {
    let r = match v6_to_v4::translate(ctx, cfg).unpack() {
        // Left to the translator link at TC (see `Handoff::SlowPath`), untouched so far.
        Ok(Step::IcmpError | Step::Hairpin | Step::Unreachable) if !C::FULL => {
            link::hand_off(cfg, Dir::V6ToV4, Handoff::SlowPath, DropReason::NeedsLink)
        }
        // Called from here, not from `translate`, so that its frame replaces that one.
        Ok(Step::IcmpError) => match icmp_error::v6_to_v4(ctx, cfg).unpack() {
            // Half done: an error about a hairpinned flow goes on to 4-to-6 (XDP only: TC
            // hands every error to the translator link above).
            Ok(Step::Translated)
                if C::FULL && scratch::get().is_ok_and(|s| s.hairpin_error != 0) =>
            {
                return AGAIN_4TO6;
            }
            r => r,
        },
        Ok(Step::Hairpin) => hairpin::v6(ctx, cfg).unpack(),
        Ok(Step::Unreachable) => unreachable::answer(ctx, cfg).unpack(),
        r => r,
    };
    finish(ctx, cfg, Dir::V6ToV4, r)
}

/// IPv4 to IPv6: the translation and what follows it.
#[cfg(target_arch = "bpf")]
#[inline(always)]
fn run4<C: Frame>(ctx: &C, cfg: &Config) -> u32 {
    let r = match v4_to_v6::translate(ctx, cfg).unpack() {
        // Cut to what the link's routes let in, or the kernel would drop it there.
        // Straight into the link: the kernel would drop one from a martian source (a
        // router's 127.0.0.1) before routing it there.
        Ok(Step::IcmpError) if !C::FULL => icmp_error::fit_for_link(ctx)
            .unpack()
            .and_then(|_| link::redirect(cfg, Dir::V4ToV6)),
        // Straight into the link too: to a pool4 address the node shares, the kernel would
        // deliver it to the node rather than route it there.
        Ok(Step::FragNeeded) if !C::FULL => link::redirect(cfg, Dir::V4ToV6),
        Ok(Step::IcmpError) => icmp_error::v4_to_v6(ctx, cfg).unpack(),
        Ok(Step::FragNeeded) => too_big::frag_needed(ctx, cfg).unpack(),
        // One call for every way there (a fragment, a packet to fragment, an aggregate): the
        // verifier walks the rewrite once, from the one scalar `translate` returns.
        Ok(Step::Alias { aggregate }) => link::to_alias(ctx, cfg, aggregate),
        // RFC 7915 section 4.5: a UDP datagram without a checksum that is not to get one
        // (`l4::ZeroUdp::Drop`, decided before anything is written) is answered.
        Err(DropReason::UdpZeroChecksum) => {
            too_big::prohibited(ctx, cfg, DropReason::UdpZeroChecksum).unpack()
        }
        // RFC 7915 section 4.1: an unexpired source route is answered (only seen here with
        // the whole core: at TC such a packet goes into the translator link).
        Err(DropReason::SourceRoute) => too_big::source_route_failed(ctx, cfg).unpack(),
        // Refused by address-dependent filtering (not a TCP SYN refused by
        // `drop_external_tcp`, which RFC 6146 section 3.5.2.2 drops silently): answered.
        Err(DropReason::Filtered) if !packet::is_tcp4(ctx) => {
            too_big::prohibited(ctx, cfg, DropReason::Filtered).unpack()
        }
        r => r,
    };
    finish(ctx, cfg, Dir::V4ToV6, r)
}

/// Where a translated packet goes, or the verdict on one that was not.
#[cfg(target_arch = "bpf")]
#[inline(always)]
fn finish<C: Frame>(ctx: &C, cfg: &Config, dir: Dir, r: Result<Step, DropReason>) -> u32 {
    match r {
        // What the link does not take (on the link, everything; else a stateful hairpin to a
        // pool4 address the node shares) goes up the stack, or is forwarded from here.
        Ok(Step::Translated) => match link::emit(ctx, cfg, dir) {
            xdp_action::XDP_PASS if forward::enabled(cfg) && !link::on_link(cfg) => {
                forward::forward(ctx, dir)
            }
            action => action,
        },
        r => verdict(dir, r),
    }
}

/// What `translate` decided.
#[cfg(target_arch = "bpf")]
#[derive(Clone, Copy)]
pub enum Step {
    /// Finished: this XDP action.
    Done(u32),
    /// Ours, and an ICMP error: `icmp_error` takes it from here.
    IcmpError,
    /// IPv4 with DF, too big for the IPv6 MTU once translated: `too_big` answers it.
    FragNeeded,
    /// IPv6 to an IPv4 alias of another IPv6 host: `hairpin` sends it back to IPv6.
    Hairpin,
    /// Translated in place: `link::emit` decides where it goes.
    Translated,
    /// Not translated, and counted already: `unreachable` answers with the ICMPv6 Destination
    /// Unreachable code in the scratch slot (`Scratch::answer6`).
    Unreachable,
    /// IPv4 to a pool4 address the node shares, for the kernel to fragment (or, `aggregate`,
    /// segment) on its way into the translator link: `link::to_alias` readdresses it.
    Alias { aggregate: bool },
}

/// The outcome of a non-inlined function, as one scalar: a result larger than a register is
/// returned through a pointer to the caller's stack, which the verifier refuses ("cannot
/// return stack pointer to the caller").
#[cfg(target_arch = "bpf")]
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct Packed(u32);

#[cfg(target_arch = "bpf")]
impl Packed {
    /// XDP actions are 0 to 4; drop reasons and the ICMP-error marker sit above them.
    const DROP: u32 = 0x100;
    const ICMP_ERROR: u32 = 0x200;
    const FRAG_NEEDED: u32 = 0x201;
    const HAIRPIN: u32 = 0x202;
    const TRANSLATED: u32 = 0x203;
    const UNREACHABLE: u32 = 0x204;
    const ALIAS: u32 = 0x205;
    const ALIAS_AGGREGATE: u32 = 0x206;

    #[inline(always)]
    pub fn pack(r: Result<Step, DropReason>) -> Self {
        match r {
            Ok(Step::Done(a)) => Packed(a),
            Ok(Step::IcmpError) => Packed(Self::ICMP_ERROR),
            Ok(Step::FragNeeded) => Packed(Self::FRAG_NEEDED),
            Ok(Step::Hairpin) => Packed(Self::HAIRPIN),
            Ok(Step::Translated) => Packed(Self::TRANSLATED),
            Ok(Step::Unreachable) => Packed(Self::UNREACHABLE),
            Ok(Step::Alias { aggregate: false }) => Packed(Self::ALIAS),
            Ok(Step::Alias { aggregate: true }) => Packed(Self::ALIAS_AGGREGATE),
            Err(reason) => Packed(Self::DROP + reason as u32),
        }
    }

    #[inline(always)]
    pub fn unpack(self) -> Result<Step, DropReason> {
        match self.0 {
            Self::ICMP_ERROR => Ok(Step::IcmpError),
            Self::FRAG_NEEDED => Ok(Step::FragNeeded),
            Self::HAIRPIN => Ok(Step::Hairpin),
            Self::TRANSLATED => Ok(Step::Translated),
            Self::UNREACHABLE => Ok(Step::Unreachable),
            Self::ALIAS => Ok(Step::Alias { aggregate: false }),
            Self::ALIAS_AGGREGATE => Ok(Step::Alias { aggregate: true }),
            v if v >= Self::DROP => Err(crate::packet::drop_reason(v - Self::DROP)),
            a => Ok(Step::Done(a)),
        }
    }
}

/// Every refusal is counted under its reason; nothing is dropped silently.
#[cfg(target_arch = "bpf")]
#[inline(always)]
fn verdict(dir: Dir, r: Result<Step, DropReason>) -> u32 {
    match r {
        Ok(Step::Done(action)) => action,
        // Handled by `run`.
        Ok(Step::Translated) => xdp_action::XDP_PASS,
        // None of `icmp_error`, `too_big` and `hairpin` hands a packet on again.
        Ok(
            Step::IcmpError
            | Step::FragNeeded
            | Step::Hairpin
            | Step::Unreachable
            | Step::Alias { .. },
        ) => {
            stats::add(Counter::Dropped(dir, DropReason::Internal), 1);
            xdp_action::XDP_DROP
        }
        Err(reason) => {
            stats::add(Counter::Dropped(dir, reason), 1);
            xdp_action::XDP_DROP
        }
    }
}

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // Unreachable in a verified program: the verifier rejects any path that could get here.
    loop {}
}

// The kernel requires a GPL-compatible licence for some helpers; the code is dual licensed.
#[cfg(target_arch = "bpf")]
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

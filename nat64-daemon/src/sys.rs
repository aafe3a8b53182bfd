//! Small wrappers over libc calls the daemon needs.

use std::ffi::CString;

/// Where the `net.*` sysctls are read and written: `/proc/sys` unless `NAT64D_PROC_SYS` says
/// otherwise. A container's `/proc/sys` is read-only; a DaemonSet mounts the host's
/// `/proc/sys/net` elsewhere (it shows the host's values: the pod shares the host's network
/// namespace) and points `NAT64D_PROC_SYS` at its parent.
///
/// The dots of a key are its path's slashes, but for an interface name's own dots (a VLAN,
/// `eth0.100`): in `net.ipv4.conf.IFACE.KEY` the interface is everything between the prefix
/// and the last dot.
pub fn sysctl_path(key: &str) -> std::path::PathBuf {
    let root = std::env::var_os("NAT64D_PROC_SYS").unwrap_or_else(|| "/proc/sys".into());
    std::path::Path::new(&root).join(sysctl_relative(key))
}

fn sysctl_relative(key: &str) -> std::path::PathBuf {
    for prefix in ["net.ipv4.conf.", "net.ipv6.conf."] {
        if let Some((iface, leaf)) = key.strip_prefix(prefix).and_then(|r| r.rsplit_once('.')) {
            return std::path::Path::new(&prefix.replace('.', "/"))
                .join(iface)
                .join(leaf);
        }
    }
    key.replace('.', "/").into()
}

/// The index of interface `name` in the current network namespace, if it exists.
pub fn if_index(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (idx != 0).then_some(idx)
}

/// The MTU of interface `name` (SIOCGIFMTU).
pub fn mtu(name: &str) -> std::io::Result<u32> {
    #[repr(C)]
    struct IfReqMtu {
        name: [u8; libc::IFNAMSIZ],
        mtu: libc::c_int,
        _pad: [u8; 20],
    }
    if name.len() >= libc::IFNAMSIZ {
        return Err(std::io::Error::from(std::io::ErrorKind::InvalidInput));
    }
    let mut req = IfReqMtu {
        name: [0; libc::IFNAMSIZ],
        mtu: 0,
        _pad: [0; 20],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    ioctl_on_dgram_socket(
        libc::SIOCGIFMTU,
        &mut req as *mut IfReqMtu as *mut libc::c_void,
    )?;
    Ok(req.mtu as u32)
}

/// The hardware (MAC) address of interface `name` (SIOCGIFHWADDR).
pub fn mac(name: &str) -> std::io::Result<[u8; 6]> {
    #[repr(C)]
    struct IfReqHw {
        name: [u8; libc::IFNAMSIZ],
        addr: libc::sockaddr,
        _pad: [u8; 8],
    }
    if name.len() >= libc::IFNAMSIZ {
        return Err(std::io::Error::from(std::io::ErrorKind::InvalidInput));
    }
    // SAFETY: an all-zero ifreq is a valid value of this plain C struct.
    let mut req: IfReqHw = unsafe { std::mem::zeroed() };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    ioctl_on_dgram_socket(
        libc::SIOCGIFHWADDR,
        &mut req as *mut IfReqHw as *mut libc::c_void,
    )?;
    let mut mac = [0u8; 6];
    for (m, b) in mac.iter_mut().zip(req.addr.sa_data.iter()) {
        *m = *b as u8;
    }
    Ok(mac)
}

/// Runs one interface ioctl on a throwaway datagram socket.
fn ioctl_on_dgram_socket(request: libc::c_ulong, arg: *mut libc::c_void) -> std::io::Result<()> {
    // SAFETY: a datagram socket only used for the ioctl, closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the caller passes a pointer to the ifreq layout `request` expects.
    let rc = unsafe { libc::ioctl(fd, request as _, arg) };
    let err = std::io::Error::last_os_error();
    // SAFETY: closing the socket opened above.
    unsafe { libc::close(fd) };
    if rc < 0 { Err(err) } else { Ok(()) }
}

/// What `ethtool -i` reports: the driver and the bus the device sits on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriverInfo {
    pub driver: String,
    /// Empty for virtual devices (veth, bridge, tun, ...).
    pub bus_info: String,
}

const SIOCETHTOOL: libc::c_ulong = 0x8946;

/// Runs the ethtool ioctl on interface `name` with `data`, a struct from <linux/ethtool.h>
/// that starts with its command word.
fn ethtool<T>(name: &str, data: &mut T) -> std::io::Result<()> {
    #[repr(C)]
    struct IfReq<T> {
        name: [u8; libc::IFNAMSIZ],
        data: *mut T,
        _pad: [u8; 16],
    }
    if name.len() >= libc::IFNAMSIZ {
        return Err(std::io::Error::from(std::io::ErrorKind::InvalidInput));
    }
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        data,
        _pad: [0; 16],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    // `req.data` points at `data`, which outlives the call.
    ioctl_on_dgram_socket(SIOCETHTOOL, &mut req as *mut IfReq<T> as *mut libc::c_void)
}

/// Queries the driver of interface `name` with the ETHTOOL_GDRVINFO ioctl.
pub fn driver_info(name: &str) -> std::io::Result<DriverInfo> {
    const ETHTOOL_GDRVINFO: u32 = 0x0000_0003;
    // struct ethtool_drvinfo from <linux/ethtool.h>.
    #[repr(C)]
    struct DrvInfo {
        cmd: u32,
        driver: [u8; 32],
        version: [u8; 32],
        fw_version: [u8; 32],
        bus_info: [u8; 32],
        erom_version: [u8; 32],
        reserved2: [u8; 12],
        n_priv_flags: u32,
        n_stats: u32,
        testinfo_len: u32,
        eedump_len: u32,
        regdump_len: u32,
    }
    // SAFETY: all-zero is a valid value for this plain C struct.
    let mut info: DrvInfo = unsafe { std::mem::zeroed() };
    info.cmd = ETHTOOL_GDRVINFO;
    ethtool(name, &mut info)?;
    let cstr = |b: &[u8]| {
        let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        String::from_utf8_lossy(&b[..end]).into_owned()
    };
    Ok(DriverInfo {
        driver: cstr(&info.driver),
        bus_info: cstr(&info.bus_info),
    })
}

/// Switches transmit checksum offload of interface `name` on or off (`ethtool -K NAME tx`,
/// the ETHTOOL_STXCSUM ioctl). Off, the kernel completes partial checksums before handing a
/// packet to the device.
pub fn set_tx_checksum(name: &str, on: bool) -> std::io::Result<()> {
    const ETHTOOL_STXCSUM: u32 = 0x0000_0017;
    // struct ethtool_value.
    #[repr(C)]
    struct Value {
        cmd: u32,
        data: u32,
    }
    let mut v = Value {
        cmd: ETHTOOL_STXCSUM,
        data: on as u32,
    };
    ethtool(name, &mut v)
}

/// Every IPv4 address of this host (all interfaces), with its interface.
pub fn ipv4_addrs() -> Vec<(String, std::net::Ipv4Addr)> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list that freeifaddrs releases below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, alive until freeifaddrs.
        let ifa = unsafe { &*cur };
        // SAFETY: ifa_addr points at a sockaddr of the family it declares.
        if !ifa.ifa_addr.is_null() && unsafe { (*ifa.ifa_addr).sa_family } as i32 == libc::AF_INET {
            // SAFETY: ifa_name is a NUL-terminated string owned by the list.
            let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) };
            // SAFETY: the family is AF_INET, so this is a sockaddr_in.
            let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
            out.push((
                name.to_string_lossy().into_owned(),
                std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
            ));
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: releases the list from getifaddrs exactly once.
    unsafe { libc::freeifaddrs(head) };
    out
}

/// Every IPv6 address of this host (`if_inet6`), link-local ones included. Read through
/// `thread-self`: `/proc/net` is the process's namespace, not the calling thread's.
pub fn ipv6_addrs() -> Vec<std::net::Ipv6Addr> {
    let path = std::path::Path::new("/proc/thread-self/net/if_inet6");
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| u128::from_str_radix(l.split_whitespace().next()?, 16).ok())
        .map(std::net::Ipv6Addr::from)
        .collect()
}

/// The first IPv4 address of interface `name`, if it has one.
pub fn ipv4_addr(name: &str) -> Option<std::net::Ipv4Addr> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list that freeifaddrs releases below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return None;
    }
    let mut found = None;
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, alive until freeifaddrs.
        let ifa = unsafe { &*cur };
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let ifname = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) };
        if found.is_none()
            && ifname.to_bytes() == name.as_bytes()
            && !ifa.ifa_addr.is_null()
            // SAFETY: ifa_addr points at a sockaddr of the family it declares.
            && unsafe { (*ifa.ifa_addr).sa_family } as i32 == libc::AF_INET
        {
            // SAFETY: the family is AF_INET, so this is a sockaddr_in.
            let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
            found = Some(std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)));
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: releases the list from getifaddrs exactly once.
    unsafe { libc::freeifaddrs(head) };
    found
}

/// Whether `path` is on a bpf filesystem (where maps can be pinned).
pub fn is_bpffs(path: &std::path::Path) -> bool {
    const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
    let Ok(c) = CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: all-zero is a valid statfs; statfs fills it for a NUL-terminated path.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is valid for the call and `st` is ours.
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    rc == 0 && st.f_type as i64 == BPF_FS_MAGIC
}

/// Whether `path`, or the nearest of its ancestors that exists, lies on a bpf filesystem
/// (where pinned maps and links outlive the process).
pub fn on_bpffs(path: &std::path::Path) -> bool {
    path.ancestors().find(|p| p.exists()).is_some_and(is_bpffs)
}

/// Mounts a bpf filesystem at `at` (mode 0700: only root reaches the pinned state). Needs
/// CAP_SYS_ADMIN.
pub fn mount_bpffs(at: &std::path::Path) -> std::io::Result<()> {
    let target = CString::new(at.as_os_str().as_encoded_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: every pointer is a NUL-terminated string that outlives the call.
    let rc = unsafe {
        libc::mount(
            c"bpf".as_ptr(),
            target.as_ptr(),
            c"bpf".as_ptr(),
            0,
            c"mode=0700".as_ptr().cast(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The interface a pinned XDP link is attached to, from the kernel's fdinfo of the link
/// (`ifindex:`): `None` if the pin cannot be opened or the link's device is gone (0).
pub fn pinned_link_ifindex(path: &std::path::Path) -> Option<u32> {
    use std::os::unix::ffi::OsStrExt as _;
    const BPF_OBJ_GET: libc::c_long = 7;
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    // union bpf_attr for BPF_OBJ_GET: pathname (u64), bpf_fd, file_flags, path_fd; the rest
    // stays zero.
    let mut attr = [0u64; 16];
    attr[0] = c.as_ptr() as u64;
    // SAFETY: `attr` outlives the call and is larger than the kernel reads for this command;
    // `c` stays alive until after it.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET,
            attr.as_mut_ptr(),
            std::mem::size_of_val(&attr) as u32,
        )
    };
    if fd < 0 {
        return None;
    }
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}"));
    // SAFETY: closing the descriptor BPF_OBJ_GET returned above.
    unsafe { libc::close(fd as libc::c_int) };
    info.ok()?
        .lines()
        .find_map(|l| l.strip_prefix("ifindex:"))
        .and_then(|v| v.trim().parse::<u32>().ok())
        .filter(|&i| i != 0)
}

/// Every entry of a hash map through `BPF_MAP_LOOKUP_BATCH` (Linux 5.6): one bpf(2) call per
/// `chunk` entries instead of two per entry. `K` and `V` must be the map's key and value types
/// (the kernel writes `count` of each, back to back). `None` when the kernel refuses batches
/// (the caller then iterates).
pub fn lookup_batch<K: Copy, V: Copy>(fd: std::os::fd::RawFd) -> Option<Vec<(K, V)>> {
    const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
    let mut chunk: usize = 4096;
    let mut out = Vec::new();
    let mut token: u64 = 0;
    let mut first = true;
    loop {
        let mut keys: Vec<std::mem::MaybeUninit<K>> = Vec::with_capacity(chunk);
        let mut values: Vec<std::mem::MaybeUninit<V>> = Vec::with_capacity(chunk);
        let mut next: u64 = 0;
        // union bpf_attr, batch: in_batch, out_batch, keys, values (pointers), count and
        // map_fd (u32 each), elem_flags, flags.
        let mut attr = [0u64; 16];
        attr[0] = if first {
            0
        } else {
            &token as *const u64 as u64
        };
        attr[1] = &mut next as *mut u64 as u64;
        attr[2] = keys.as_mut_ptr() as u64;
        attr[3] = values.as_mut_ptr() as u64;
        attr[4] = chunk as u64 | (fd as u32 as u64) << 32;
        // SAFETY: the buffers hold `chunk` keys and values of the map's types and outlive the
        // call; the kernel writes at most that many and says how many in the count field.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_LOOKUP_BATCH,
                attr.as_mut_ptr(),
                std::mem::size_of_val(&attr) as u32,
            )
        };
        let err = std::io::Error::last_os_error().raw_os_error();
        let n = (attr[4] & 0xffff_ffff) as usize;
        if rc < 0 && err == Some(libc::ENOSPC) && n == 0 {
            // A bucket holds more than `chunk` entries: a bigger buffer.
            chunk *= 4;
            continue;
        }
        if rc < 0 && err != Some(libc::ENOENT) {
            return None;
        }
        let n = n.min(chunk);
        // SAFETY: the kernel initialised the first `n` keys and values.
        unsafe {
            keys.set_len(n);
            values.set_len(n);
        }
        out.extend(
            keys.into_iter()
                .zip(values)
                // SAFETY: initialised above.
                .map(|(k, v)| unsafe { (k.assume_init(), v.assume_init()) }),
        );
        if rc < 0 {
            // ENOENT: the last batch.
            return Some(out);
        }
        token = next;
        first = false;
    }
}

/// The name of interface `index` in this namespace, if there is one.
pub fn interface_name(index: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IFNAMSIZ];
    // SAFETY: the buffer holds IFNAMSIZ bytes, as if_indextoname requires.
    let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: on success the buffer holds a NUL-terminated name.
    let name = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}

/// The names of this network namespace's interfaces (`if_nameindex`, which asks the kernel
/// over netlink: right in whatever namespace the calling thread is, where `/sys/class/net`
/// shows the namespace that mounted it).
pub fn interface_names() -> Vec<String> {
    let mut out = Vec::new();
    // SAFETY: if_nameindex returns an array terminated by a zero entry, or null; it is freed
    // below with if_freenameindex.
    let list = unsafe { libc::if_nameindex() };
    if list.is_null() {
        return out;
    }
    let mut i = 0;
    loop {
        // SAFETY: within the array, up to and including its terminating entry.
        let e = unsafe { &*list.add(i) };
        if e.if_index == 0 || e.if_name.is_null() {
            break;
        }
        // SAFETY: a NUL-terminated name owned by the array.
        let name = unsafe { std::ffi::CStr::from_ptr(e.if_name) };
        out.push(name.to_string_lossy().into_owned());
        i += 1;
    }
    // SAFETY: the array if_nameindex returned, freed once.
    unsafe { libc::if_freenameindex(list) };
    out
}

/// The smallest MTU of this namespace's interfaces, for IPv4 and for IPv6 (only MTUs of 1280
/// and more: below, a device carries no IPv6), leaving out loopback and `skip` (the
/// translator link's ends); 0 where none is known, which makes the dataplane check every
/// packet (`Config::mtu_floor4`).
pub fn mtu_floors(skip: &[String]) -> (u16, u16) {
    let (mut v4, mut v6) = (u32::MAX, u32::MAX);
    for name in interface_names() {
        if name == "lo" || skip.contains(&name) {
            continue;
        }
        let Ok(m) = mtu(&name) else { continue };
        v4 = v4.min(m);
        // The interface's IPv6 MTU, which a router advertisement's MTU option lowers below the
        // device's (RFC 4861 section 6.3.4), and which the kernel's route lookups use: a floor
        // from the device MTU alone let the dataplane skip its route check for packets that
        // fit the device but not the IPv6 link.
        let m6 = ipv6_mtu_of(&name).map_or(m, |m6| m6.min(m));
        if m6 >= 1280 {
            v6 = v6.min(m6);
        }
    }
    let floor = |m: u32| {
        if m == u32::MAX {
            0
        } else {
            m.min(u16::MAX as u32) as u16
        }
    };
    (floor(v4), floor(v6))
}

/// The IPv6 MTU of interface `name` (`net.ipv6.conf.NAME.mtu`), if IPv6 is on there.
fn ipv6_mtu_of(name: &str) -> Option<u32> {
    std::fs::read_to_string(format!("/proc/sys/net/ipv6/conf/{name}/mtu"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Copies every entry of hash map `from` into `to` (same key and value sizes, `to` possibly of
/// another size) with `BPF_MAP_GET_NEXT_KEY`, `LOOKUP_ELEM` and `UPDATE_ELEM`: the kernel
/// cannot resize a map. At most `limit` steps: a key deleted under the walk sends the kernel's
/// iteration back to the first key. Returns how many entries were copied and how many `to`
/// refused (full).
pub fn copy_map_entries(
    from: std::os::fd::RawFd,
    to: std::os::fd::RawFd,
    key_size: usize,
    value_size: usize,
    limit: u64,
) -> (u64, u64) {
    const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
    const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
    const BPF_MAP_GET_NEXT_KEY: libc::c_long = 4;
    let elem = |cmd: libc::c_long, fd: i32, key: *const u8, value: *mut u8| -> bool {
        // union bpf_attr for the element commands: map_fd (u32, then 4 bytes of padding), key,
        // value or next_key (pointers), flags; the rest stays zero.
        let mut attr = [0u64; 8];
        attr[0] = fd as u32 as u64;
        attr[1] = key as u64;
        attr[2] = value as u64;
        // SAFETY: the key and value buffers have the map's sizes and outlive the call.
        unsafe {
            libc::syscall(
                libc::SYS_bpf,
                cmd,
                attr.as_mut_ptr(),
                std::mem::size_of_val(&attr) as u32,
            ) == 0
        }
    };
    let mut key = vec![0u8; key_size];
    let mut next = vec![0u8; key_size];
    let mut value = vec![0u8; value_size];
    let (mut copied, mut refused) = (0, 0);
    // A null key asks for the first one.
    let mut at: *const u8 = std::ptr::null();
    let mut steps = 0;
    while steps < limit && elem(BPF_MAP_GET_NEXT_KEY, from, at, next.as_mut_ptr()) {
        steps += 1;
        std::mem::swap(&mut key, &mut next);
        at = key.as_ptr();
        if !elem(BPF_MAP_LOOKUP_ELEM, from, key.as_ptr(), value.as_mut_ptr()) {
            continue;
        }
        if elem(BPF_MAP_UPDATE_ELEM, to, key.as_ptr(), value.as_mut_ptr()) {
            copied += 1;
        } else {
            refused += 1;
        }
    }
    (copied, refused)
}

/// Takes the exclusive lock of a directory (`flock(2)` on it, which a bpf filesystem supports)
/// for as long as the returned file stays open: `Ok(None)` when another process holds it.
/// The state directory's lock says which daemon owns the pins, whether or not it serves an
/// admin socket; the kernel drops it when that process ends, however it ends.
pub fn lock_dir(dir: &std::path::Path) -> std::io::Result<Option<std::fs::File>> {
    use std::os::fd::AsRawFd as _;
    let f = std::fs::File::open(dir)?;
    // SAFETY: a plain call on a descriptor this function owns.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(Some(f));
    }
    let e = std::io::Error::last_os_error();
    if e.kind() == std::io::ErrorKind::WouldBlock {
        Ok(None)
    } else {
        Err(e)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sysctl_keys_keep_the_dots_of_interface_names() {
        let rel = |k: &str| super::sysctl_relative(k).display().to_string();
        assert_eq!(
            rel("net.ipv4.conf.eth0.100.rp_filter"),
            "net/ipv4/conf/eth0.100/rp_filter"
        );
        assert_eq!(
            rel("net.ipv6.conf.nat64.v6.disable_ipv6"),
            "net/ipv6/conf/nat64.v6/disable_ipv6"
        );
        assert_eq!(
            rel("net.ipv4.conf.all.rp_filter"),
            "net/ipv4/conf/all/rp_filter"
        );
        assert_eq!(rel("net.ipv4.ip_forward"), "net/ipv4/ip_forward");
        assert_eq!(
            rel("net.ipv6.conf.all.forwarding"),
            "net/ipv6/conf/all/forwarding"
        );
    }
}

//! Traffic peers: TCP bulk transfer with content check, UDP echo, and a tiny HTTP responder.
//! Every socket has a timeout and every loop a bound, so a broken translator fails a test
//! instead of hanging it.

use std::{
    io::{ErrorKind, Read, Write},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket},
    time::Duration,
};

const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// Deterministic pseudo-random bytes (xorshift64*), so both ends know what to expect.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// What the server side of a TCP transfer saw.
#[derive(Debug)]
pub struct TcpServerReport {
    /// The client's address as the server saw it (the translated source).
    pub peer: SocketAddr,
    /// Whether the uploaded bytes matched the pattern exactly.
    pub upload_intact: bool,
    pub uploaded: usize,
}

/// Serves one connection: reads `up` bytes (to EOF) and checks them against `pattern(up,
/// seed)`, then sends `pattern(down, seed + 1)` and closes.
pub fn tcp_serve_once(listener: TcpListener, up: usize, down: usize, seed: u64) -> TcpServerReport {
    let (mut s, peer) = listener.accept().expect("accept");
    s.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    s.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
    let mut got = Vec::with_capacity(up);
    s.read_to_end(&mut got).expect("read upload");
    let upload_intact = got == pattern(up, seed);
    s.write_all(&pattern(down, seed + 1))
        .expect("write download");
    s.shutdown(Shutdown::Write).expect("shutdown");
    TcpServerReport {
        peer,
        upload_intact,
        uploaded: got.len(),
    }
}

/// The client side: sends `pattern(up, seed)`, half-closes, reads to EOF and returns whether
/// the download matched `pattern(down, seed + 1)` and its length.
pub fn tcp_transfer(stream: TcpStream, up: usize, down: usize, seed: u64) -> (bool, usize) {
    let mut s = stream;
    s.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    s.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
    s.write_all(&pattern(up, seed)).expect("write upload");
    s.shutdown(Shutdown::Write).expect("half-close");
    let mut got = Vec::with_capacity(down);
    s.read_to_end(&mut got).expect("read download");
    (got == pattern(down, seed + 1), got.len())
}

/// Connects with a bounded timeout (run it inside the client's namespace).
pub fn tcp_connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"))
}

/// Connects from the IPv6 source address `src` (port chosen by the kernel) with a bounded
/// timeout: what `TcpStream` cannot do, through libc. Run it inside the client's namespace.
pub fn tcp_connect_from(src: std::net::Ipv6Addr, addr: SocketAddr) -> TcpStream {
    tcp_connect_bound((src, 0).into(), addr, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("connect from [{src}] to {addr}: {e}"))
}

/// A `sockaddr_in` or `sockaddr_in6` for `a`, with its length.
fn sockaddr(a: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage; the fields set below make it `a`.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match a {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for a sockaddr_in.
            let sa = unsafe { &mut *(&mut ss as *mut _ as *mut libc::sockaddr_in) };
            sa.sin_family = libc::AF_INET as libc::sa_family_t;
            sa.sin_port = a.port().to_be();
            sa.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for a sockaddr_in6.
            let sa = unsafe { &mut *(&mut ss as *mut _ as *mut libc::sockaddr_in6) };
            sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sa.sin6_port = a.port().to_be();
            sa.sin6_addr.s6_addr = a.ip().octets();
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

/// Connects from `local` (address and port) to `to` within `timeout`: what `TcpStream`
/// cannot do, through libc. A fixed source port is what a TCP simultaneous open needs. Run it
/// inside the peer's namespace.
pub fn tcp_connect_bound(
    local: SocketAddr,
    to: SocketAddr,
    timeout: Duration,
) -> std::io::Result<TcpStream> {
    use std::os::fd::FromRawFd as _;
    let family = if local.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: a fresh socket, owned by the TcpStream built from it below.
    let fd = unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the descriptor is ours; the stream closes it when dropped.
    let stream = unsafe { TcpStream::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    // SAFETY: setting an int option on our socket.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            &one as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    let (sa, len) = sockaddr(local);
    // SAFETY: binding our socket to a valid address of the right length.
    if unsafe { libc::bind(fd, &sa as *const _ as *const libc::sockaddr, len) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // Connect with a timeout: non-blocking connect, then wait for writability.
    stream.set_nonblocking(true)?;
    let (da, len) = sockaddr(to);
    // SAFETY: connecting our socket to a valid address of the right length.
    unsafe { libc::connect(fd, &da as *const _ as *const libc::sockaddr, len) };
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: polling one descriptor we own, for a bounded time.
    let n = unsafe { libc::poll(&mut pfd, 1, timeout.as_millis() as libc::c_int) };
    if n != 1 {
        return Err(std::io::Error::from(std::io::ErrorKind::TimedOut));
    }
    if let Some(e) = stream.take_error()? {
        return Err(e);
    }
    stream.set_nonblocking(false)?;
    Ok(stream)
}

/// Echoes `count` datagrams back to their senders; returns the sender addresses seen.
pub fn udp_echo(sock: UdpSocket, count: usize) -> Vec<SocketAddr> {
    sock.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    let mut buf = vec![0u8; 65536];
    let mut peers = Vec::new();
    for _ in 0..count {
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            break;
        };
        sock.send_to(&buf[..n], from).expect("echo");
        peers.push(from);
    }
    peers
}

/// Sends one datagram per size in `sizes` to `to` and waits for each echo (retrying twice on a
/// timeout: the first packet may wait for neighbour resolution). Returns how many came back
/// byte-identical.
pub fn udp_exchange(sock: &UdpSocket, to: SocketAddr, sizes: &[usize], seed: u64) -> usize {
    sock.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let mut ok = 0;
    let mut buf = vec![0u8; 65536];
    for (i, &len) in sizes.iter().enumerate() {
        let msg = pattern(len, seed + i as u64);
        for _attempt in 0..3 {
            sock.send_to(&msg, to).expect("send");
            match sock.recv_from(&mut buf) {
                Ok((n, _)) => {
                    if buf[..n] == msg[..] {
                        ok += 1;
                    }
                    break;
                }
                Err(_) => continue,
            }
        }
    }
    ok
}

/// Answers up to `max` HTTP requests with a plain-text page naming both ends of the connection,
/// then returns. Stops early when `accept` times out (non-blocking poll for at most `idle`).
pub fn http_serve(listener: TcpListener, max: usize, idle: Duration) {
    listener.set_nonblocking(true).expect("nonblocking");
    let mut served = 0;
    let mut waited = Duration::ZERO;
    let step = Duration::from_millis(20);
    while served < max && waited < idle {
        match listener.accept() {
            Ok((mut s, peer)) => {
                waited = Duration::ZERO;
                served += 1;
                let _ = s.set_nonblocking(false);
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 16384 {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let local = s.local_addr().map(|a| a.to_string()).unwrap_or_default();
                let body = format!("hello from {local}; you are {peer}\n");
                let _ = write!(
                    s,
                    "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
            Err(_) => {
                std::thread::sleep(step);
                waited += step;
            }
        }
    }
}

/// Sends a datagram from a socket bound at `local` in `from`, connected to `to` (a port nobody
/// listens on), and says whether the sender learned "connection refused": it only can from an
/// ICMP Port Unreachable that found its way back. A few tries, each bounded (the first
/// datagram may wait for neighbour resolution).
pub fn udp_refused(from: &crate::netns::Netns, local: &'static str, to: SocketAddr) -> bool {
    let sock = from.run(|| UdpSocket::bind(local)).expect("bind");
    sock.connect(to).expect("connect");
    sock.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let mut buf = [0u8; 64];
    for _ in 0..3 {
        let _ = sock.send(b"anyone there?");
        match sock.recv(&mut buf) {
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => return true,
            _ => std::thread::sleep(Duration::from_millis(300)),
        }
    }
    false
}

/// A plain HTTP/1.0 GET of `path` from `addr` (run it inside the namespace that can reach
/// it): (status code, body).
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_string()))
}

/// One short flow from each stateful client: a datagram out and its echo back. Returns, per
/// client, the IPv4 source the server saw (what its log would show).
pub fn short_udp_flows(
    lab: &crate::lab::Lab,
    server: &UdpSocket,
    port: u16,
) -> Vec<(std::net::Ipv6Addr, u16, SocketAddr)> {
    let mut seen = Vec::new();
    for client in crate::lab::STATEFUL_CLIENTS {
        let sock = lab
            .client6
            .run(|| UdpSocket::bind((client, 0)))
            .expect("bind client");
        let local = sock.local_addr().unwrap().port();
        sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        sock.send_to(b"hello", (crate::lab::SERVER4_AS_V6, port))
            .unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = server
            .recv_from(&mut buf)
            .expect("the server got the datagram");
        server.send_to(&buf[..n], from).unwrap();
        sock.recv_from(&mut buf).expect("the echo came back");
        seen.push((client, local, from));
    }
    seen
}

/// Accepts up to `connections` TCP connections and echoes 6-byte messages on each until it
/// closes or stays idle for `idle`; the returned thread ends when they all have.
pub fn echo_connections(
    listener: std::net::TcpListener,
    connections: usize,
    idle: Duration,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut handlers = Vec::new();
        for _ in 0..connections {
            let Ok((mut s, _)) = listener.accept() else {
                break;
            };
            handlers.push(std::thread::spawn(move || {
                s.set_read_timeout(Some(idle)).unwrap();
                let mut buf = [0u8; 6];
                while s.read_exact(&mut buf).is_ok() {
                    if s.write_all(&buf).is_err() {
                        break;
                    }
                }
            }));
        }
        for h in handlers {
            let _ = h.join();
        }
    })
}

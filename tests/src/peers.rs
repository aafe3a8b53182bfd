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
    use std::os::fd::FromRawFd as _;
    // SAFETY: a fresh socket, owned by the TcpStream built from it below (or closed here).
    let fd = unsafe { libc::socket(libc::AF_INET6, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: all-zero is a valid sockaddr_in6; the fields set below make it the source.
    let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    sa.sin6_addr.s6_addr = src.octets();
    // SAFETY: binding the socket above to a valid sockaddr_in6 of the right length.
    let rc = unsafe {
        libc::bind(
            fd,
            &sa as *const libc::sockaddr_in6 as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
        )
    };
    let err = std::io::Error::last_os_error();
    // SAFETY: the descriptor is ours; the stream closes it when dropped.
    let stream = unsafe { TcpStream::from_raw_fd(fd) };
    assert_eq!(rc, 0, "bind to [{src}]: {err}");
    // Connect with a timeout: non-blocking connect, then wait for writability.
    stream.set_nonblocking(true).expect("nonblocking");
    let SocketAddr::V6(dst) = addr else {
        panic!("{addr} is not IPv6")
    };
    // SAFETY: all-zero is a valid sockaddr_in6.
    let mut da: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    da.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    da.sin6_port = dst.port().to_be();
    da.sin6_addr.s6_addr = dst.ip().octets();
    // SAFETY: connecting the socket to a valid sockaddr_in6 of the right length.
    unsafe {
        libc::connect(
            fd,
            &da as *const libc::sockaddr_in6 as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
        )
    };
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: polling one descriptor we own, for at most 10 s.
    let n = unsafe { libc::poll(&mut pfd, 1, 10_000) };
    assert_eq!(n, 1, "connect from [{src}] to {addr}: timed out");
    if let Some(e) = stream.take_error().expect("SO_ERROR") {
        panic!("connect from [{src}] to {addr}: {e}");
    }
    stream.set_nonblocking(false).expect("blocking");
    stream
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

//! Network interfaces by name (`--interface eth0`) and the listen/contact addresses of the
//! `oxidask scheduler` and `oxidask worker` commands, as Dask's `--interface`,
//! `--listen-address` and `--contact-address`.
//!
//! ```
//! use oxidask_protocol::netif;
//! // The loopback interface exists on every Linux machine.
//! # #[cfg(target_os = "linux")]
//! assert_eq!(netif::interface_ipv4("lo").unwrap().to_string(), "127.0.0.1");
//! ```

use std::net::{IpAddr, Ipv4Addr};

/// This machine's network interfaces and their addresses (IPv4 and IPv6), read from the
/// operating system (`getifaddrs`), in the order it lists them. An interface without an
/// address is listed with none.
#[cfg(unix)]
pub fn interfaces() -> std::io::Result<Vec<(String, Vec<IpAddr>)>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list that freeifaddrs releases below; the list
    // is only read in between.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut out: Vec<(String, Vec<IpAddr>)> = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) }
            .to_string_lossy()
            .into_owned();
        // SAFETY: ifa_addr, when set, points at a sockaddr of the family it names.
        let addr = unsafe { sockaddr_ip(ifa.ifa_addr) };
        match out.iter_mut().find(|(n, _)| *n == name) {
            Some((_, addrs)) => addrs.extend(addr),
            None => out.push((name, addr.into_iter().collect())),
        }
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

/// Interfaces cannot be listed on this platform.
#[cfg(not(unix))]
pub fn interfaces() -> std::io::Result<Vec<(String, Vec<IpAddr>)>> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "listing network interfaces is supported on Unix only; give --host an address instead",
    ))
}

/// The IP address in `sa` (IPv4 or IPv6), if it holds one.
///
/// # Safety
/// `sa` is null or points at a valid sockaddr of the family in its `sa_family`.
#[cfg(unix)]
unsafe fn sockaddr_ip(sa: *const libc::sockaddr) -> Option<IpAddr> {
    if sa.is_null() {
        return None;
    }
    // SAFETY: the caller's promise: `sa` points at a sockaddr of its family.
    unsafe {
        match i32::from((*sa).sa_family) {
            libc::AF_INET => {
                let sin = &*(sa as *const libc::sockaddr_in);
                Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                    sin.sin_addr.s_addr,
                ))))
            }
            libc::AF_INET6 => {
                let sin6 = &*(sa as *const libc::sockaddr_in6);
                Some(IpAddr::V6(std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
            }
            _ => None,
        }
    }
}

/// The IPv4 address of the interface `name` (`eth0`), as Dask's `--interface`: an error
/// naming the interfaces there are when it does not exist, or saying it has no IPv4 address.
pub fn interface_ipv4(name: &str) -> Result<Ipv4Addr, String> {
    let all = interfaces().map_err(|e| format!("cannot list network interfaces: {e}"))?;
    let Some((_, addrs)) = all.iter().find(|(n, _)| n == name) else {
        let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
        return Err(format!(
            "no network interface `{name}` on this machine; its interfaces are: {}",
            names.join(", ")
        ));
    };
    addrs
        .iter()
        .find_map(|a| match a {
            IpAddr::V4(v4) => Some(*v4),
            IpAddr::V6(_) => None,
        })
        .ok_or_else(|| {
            let have: Vec<String> = addrs.iter().map(ToString::to_string).collect();
            format!(
                "network interface `{name}` has no IPv4 address (it has: {}); configure one or give --host an address",
                if have.is_empty() { "none".to_owned() } else { have.join(", ") }
            )
        })
}

/// Where a command listens, from Dask's options: `--listen-address` (`tcp://0.0.0.0:9000`)
/// wins; else `--interface`'s IPv4 address or `--host`, with `port`. Returns `(host, port)`.
/// Giving `--host` and `--interface` together, or either with `--listen-address`, is refused.
pub fn listen_host_port(
    host: Option<&str>,
    interface: Option<&str>,
    listen_address: Option<&str>,
    default_host: &str,
    port: u16,
) -> Result<(String, u16), String> {
    if let Some(listen) = listen_address {
        if host.is_some() || interface.is_some() {
            return Err(format!(
                "--listen-address {listen} says where to listen already: drop --host/--interface"
            ));
        }
        let hp = crate::strip_any_scheme(listen);
        let parsed = crate::split_host_port(hp).and_then(|(h, p)| Some((h, p.parse().ok()?)));
        return match parsed {
            Some((h, p)) if !h.is_empty() => Ok((h.to_owned(), p)),
            _ => Err(format!(
                "--listen-address `{listen}` is not `tcp://HOST:PORT` (e.g. tcp://0.0.0.0:9000)"
            )),
        };
    }
    match (host, interface) {
        (Some(_), Some(_)) => {
            Err("give --host or --interface, not both: --interface NAME listens on that interface's address".into())
        }
        (_, Some(name)) => Ok((interface_ipv4(name)?.to_string(), port)),
        (Some(h), None) => Ok((h.to_owned(), port)),
        (None, None) => Ok((default_host.to_owned(), port)),
    }
}

/// The address peers are told (`--contact-address`, Dask's): `host:port` from
/// `[tcp://]HOST[:PORT]`, the listening port filling in a missing port (so `--contact-address
/// worker-3` advertises the port the worker listens on).
pub fn contact_host_port(contact: &str, listening_port: u16) -> Result<String, String> {
    let hp = crate::strip_any_scheme(contact.trim());
    let bad = || {
        format!(
            "--contact-address `{contact}` is not `tcp://HOST:PORT` or `HOST` (e.g. tcp://203.0.113.5:9000)"
        )
    };
    if hp.is_empty() || hp.contains('/') {
        return Err(bad());
    }
    // `[v6]:port`, `host:port`, a bare v6 address, or a bare host.
    let bare_v6 = hp.parse::<std::net::Ipv6Addr>().is_ok();
    match crate::split_host_port(hp) {
        Some((h, p)) if !bare_v6 => {
            let port: u16 = p.parse().map_err(|_| bad())?;
            if h.is_empty() || port == 0 {
                return Err(bad());
            }
            Ok(crate::join_host_port(h, port))
        }
        _ => Ok(crate::join_host_port(hp, listening_port)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn loopback_is_found_and_unknown_names_list_the_interfaces() {
        assert_eq!(interface_ipv4("lo").unwrap(), Ipv4Addr::LOCALHOST);
        let e = interface_ipv4("nosuch0").unwrap_err();
        assert!(
            e.starts_with("no network interface `nosuch0` on this machine; its interfaces are: ")
                && e.contains("lo"),
            "{e}"
        );
    }

    #[test]
    fn listen_addresses_follow_dask() {
        assert_eq!(
            listen_host_port(None, None, Some("tcp://0.0.0.0:9000"), "127.0.0.1", 0).unwrap(),
            ("0.0.0.0".to_owned(), 9000)
        );
        assert_eq!(
            listen_host_port(None, None, Some("[::1]:9001"), "127.0.0.1", 0).unwrap(),
            ("::1".to_owned(), 9001)
        );
        assert_eq!(
            listen_host_port(Some("10.0.0.1"), None, None, "127.0.0.1", 8786).unwrap(),
            ("10.0.0.1".to_owned(), 8786)
        );
        assert_eq!(
            listen_host_port(None, None, None, "127.0.0.1", 8786).unwrap(),
            ("127.0.0.1".to_owned(), 8786)
        );
        assert!(
            listen_host_port(Some("a"), Some("lo"), None, "127.0.0.1", 0)
                .unwrap_err()
                .contains("not both")
        );
        assert!(
            listen_host_port(Some("a"), None, Some("tcp://b:1"), "127.0.0.1", 0)
                .unwrap_err()
                .contains("drop --host")
        );
        assert!(
            listen_host_port(None, None, Some("tcp://nowhere"), "127.0.0.1", 0)
                .unwrap_err()
                .contains("tcp://HOST:PORT")
        );
    }

    #[test]
    fn contact_addresses_keep_or_fill_the_port() {
        assert_eq!(
            contact_host_port("tcp://203.0.113.5:9000", 4000).unwrap(),
            "203.0.113.5:9000"
        );
        assert_eq!(
            contact_host_port("worker-3", 4000).unwrap(),
            "worker-3:4000"
        );
        assert_eq!(
            contact_host_port("fd00::5", 4000).unwrap(),
            "[fd00::5]:4000"
        );
        assert_eq!(
            contact_host_port("[fd00::5]:7", 4000).unwrap(),
            "[fd00::5]:7"
        );
        assert!(contact_host_port("tcp://h:x", 1)
            .unwrap_err()
            .contains("--contact-address `tcp://h:x`"));
        assert!(contact_host_port("", 1).is_err());
    }
}

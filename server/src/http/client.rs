//! Who is asking: the peer's address, or, behind a trusted reverse proxy, what its
//! `X-Forwarded-For` / `X-Forwarded-Proto` say. Shared by the HTTP routes and the admin API
//! (login throttle, secure cookies), so it depends on neither.

use actix_web::HttpRequest;

/// Where a request really comes from: the peer, or, when the peer is a trusted proxy, what
/// its `X-Forwarded-For` / `X-Forwarded-Proto` say.
pub struct ClientInfo {
    pub ip: String,
    pub https: bool,
}

pub fn client_info(req: &HttpRequest, trusted: &[std::net::IpAddr]) -> ClientInfo {
    let peer = req.peer_addr().map(|a| a.ip());
    let direct = ClientInfo {
        ip: peer.map(|ip| ip.to_string()).unwrap_or_default(),
        https: req.app_config().secure(),
    };
    if !peer.is_some_and(|ip| trusted.contains(&ip)) {
        return direct;
    }
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    ClientInfo {
        // The proxy appends the address it saw last; earlier entries are the client's word.
        ip: header("x-forwarded-for")
            .and_then(|v| v.rsplit(',').next())
            .map_or(direct.ip, |v| v.trim().to_owned()),
        https: header("x-forwarded-proto")
            .map_or(direct.https, |v| v.eq_ignore_ascii_case("https")),
    }
}

/// The key that limits count a client address by (login throttle, connection rates): the address itself (an IPv6 address by its /64, the
/// block one subscriber gets, so that one client cannot be a million addresses), never a longer
/// string (the address may come from a proxy's `X-Forwarded-For`, which a client can influence).
pub fn address_key(ip: &str) -> String {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(v4)) => v4.to_string(),
        Ok(std::net::IpAddr::V6(v6)) => v6.to_ipv4_mapped().map_or_else(
            || {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                format!("{}/64", std::net::Ipv6Addr::from(prefix))
            },
            |v4| v4.to_string(),
        ),
        Err(_) => "unparsable".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::client_info;
    use actix_web::test::TestRequest;

    #[test]
    fn forwarded_headers_are_believed_only_from_trusted_proxies() {
        let proxy: std::net::IpAddr = "10.0.0.5".parse().unwrap();
        let request = |peer: &str| {
            TestRequest::default()
                .peer_addr(format!("{peer}:1234").parse().unwrap())
                .insert_header(("x-forwarded-for", "6.6.6.6, 203.0.113.9"))
                .insert_header(("x-forwarded-proto", "https"))
                .to_http_request()
        };
        let via_proxy = client_info(&request("10.0.0.5"), &[proxy]);
        assert_eq!(
            (via_proxy.ip.as_str(), via_proxy.https),
            ("203.0.113.9", true)
        );
        let spoofed = client_info(&request("198.51.100.7"), &[proxy]);
        assert_eq!(
            (spoofed.ip.as_str(), spoofed.https),
            ("198.51.100.7", false)
        );
    }

    #[test]
    fn address_keys_are_addresses_only() {
        assert_eq!(super::address_key("203.0.113.9"), "203.0.113.9");
        assert_eq!(super::address_key(&"x".repeat(10_000)), "unparsable");
        // One IPv6 subscriber is one key, however many addresses of its /64 it uses.
        assert_eq!(
            super::address_key("2001:db8:1:2:aaaa::1"),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            super::address_key("2001:db8:1:2:bbbb::9"),
            "2001:db8:1:2::/64"
        );
        assert_eq!(super::address_key("::ffff:203.0.113.9"), "203.0.113.9");
    }
}

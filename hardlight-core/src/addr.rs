//! Reading `host:port` addresses.

/// The host of `host:port`, without IPv6 brackets; `None` if it is empty.
///
/// ```
/// use hardlight_core::addr::host_part;
/// assert_eq!(host_part("example.com:443"), Some("example.com"));
/// assert_eq!(host_part("[::1]:8080"), Some("::1"));
/// assert_eq!(host_part(":80"), None);
/// ```
pub fn host_part(addr: &str) -> Option<&str> {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then_some(host)
}

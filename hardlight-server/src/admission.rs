//! Connection caps: at most `ServerLimits::max_connections` per server and
//! `ServerLimits::max_connections_per_ip` per client address (an IPv6 address counting as
//! its `ipv6_prefix_len` network), counted from accept (so peers stuck in a handshake
//! count too) until the connection ends, under the address it was admitted from (so a
//! QUIC peer that migrates keeps its count where it was).

use hardlight_core::TransportKind as Transport;
use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
};

use crate::{stats::ServerCounters, sync::lock};

/// Open connections, in total and per address.
#[derive(Debug)]
pub(crate) struct Admission {
    max_total: usize,
    max_per_ip: usize,
    ipv6_prefix_len: u8,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The server holds `max_connections`.
    Server,
    /// This address holds `max_connections_per_ip`.
    Address,
}

/// A connection's place; given back on drop.
#[derive(Debug)]
pub(crate) struct Slot {
    admission: Arc<Admission>,
    ip: IpAddr,
}

impl Admission {
    pub(crate) fn new(max_total: u32, max_per_ip: u32, ipv6_prefix_len: u8) -> Arc<Self> {
        Arc::new(Self {
            max_total: max_total as usize,
            max_per_ip: max_per_ip as usize,
            ipv6_prefix_len: ipv6_prefix_len.min(128),
            open: Mutex::new(Open::default()),
        })
    }

    /// What `ip` counts as: itself for IPv4 (also when mapped into IPv6), its network for
    /// IPv6.
    pub(crate) fn address(&self, ip: IpAddr) -> IpAddr {
        match ip.to_canonical() {
            IpAddr::V4(v4) => IpAddr::V4(v4),
            IpAddr::V6(v6) => {
                let bits = u32::from(self.ipv6_prefix_len);
                let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                IpAddr::V6((u128::from(v6) & mask).into())
            }
        }
    }

    /// Takes a place for a connection from `ip`, or says why there is none.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refused> {
        let ip = self.address(ip);
        let mut open = lock(&self.open);
        if open.total >= self.max_total {
            return Err(Refused::Server);
        }
        let from_ip = open.per_ip.get(&ip).copied().unwrap_or(0);
        if from_ip >= self.max_per_ip {
            return Err(Refused::Address);
        }
        open.total += 1;
        open.per_ip.insert(ip, from_ip + 1);
        Ok(Slot {
            admission: Arc::clone(self),
            ip,
        })
    }

    /// Connections open now.
    #[cfg(test)]
    pub(crate) fn open(&self) -> usize {
        lock(&self.open).total
    }
}

/// An admitted connection, from accept until it ends: holds its slot and keeps the
/// open-connection count.
#[derive(Debug)]
pub(crate) struct Connected {
    _slot: Slot,
    counters: Arc<ServerCounters>,
}

impl Connected {
    pub(crate) fn new(slot: Slot, transport: Transport, counters: Arc<ServerCounters>) -> Self {
        counters.connection_opened(transport);
        Self {
            _slot: slot,
            counters,
        }
    }
}

impl Drop for Connected {
    fn drop(&mut self) {
        self.counters.connection_closed();
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = lock(&self.admission.open);
        open.total = open.total.saturating_sub(1);
        if let Some(count) = open.per_ip.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.per_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_total_and_per_address_and_frees_on_drop() {
        let admission = Admission::new(3, 2, 64);
        let (a, b): (IpAddr, IpAddr) = ([10, 0, 0, 1].into(), [10, 0, 0, 2].into());
        let a1 = admission.admit(a).unwrap();
        let _a2 = admission.admit(a).unwrap();
        assert_eq!(admission.admit(a).unwrap_err(), Refused::Address);
        let _b1 = admission.admit(b).unwrap();
        assert_eq!(admission.admit(b).unwrap_err(), Refused::Server);
        drop(a1);
        assert_eq!(admission.open(), 2);
        let _b2 = admission.admit(b).unwrap();
        assert!(lock(&admission.open).per_ip.len() == 2);
    }

    #[test]
    fn ipv6_peers_count_per_prefix_and_mapped_ipv4_as_ipv4() {
        let admission = Admission::new(100, 1, 64);
        let host: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same_net: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other_net: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        let _a = admission.admit(host).unwrap();
        assert_eq!(admission.admit(same_net).unwrap_err(), Refused::Address);
        let _b = admission.admit(other_net).unwrap();
        let v4: IpAddr = [192, 0, 2, 7].into();
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        let _c = admission.admit(v4).unwrap();
        assert_eq!(admission.admit(mapped).unwrap_err(), Refused::Address);
        // a /128 prefix counts every address on its own
        let each = Admission::new(100, 1, 128);
        let _d = each.admit(host).unwrap();
        assert!(each.admit(same_net).is_ok());
    }
}

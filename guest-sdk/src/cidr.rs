//! IPv4/IPv6 CIDRs with the arithmetic recipes need for address planning.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use crate::Error;

/// An address with a prefix length, e.g. `172.17.0.2/16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// A CIDR from parts; fails if the prefix is too long for the family.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, Error> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(Error::Invalid(format!("prefix /{prefix} is longer than {max}")));
        }
        Ok(Cidr { addr, prefix })
    }

    /// The address part.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    fn v4_bits(&self) -> Option<(u32, u32)> {
        match self.addr {
            IpAddr::V4(a) => {
                let mask = if self.prefix == 0 { 0 } else { u32::MAX << (32 - self.prefix) };
                Some((u32::from(a), mask))
            }
            IpAddr::V6(_) => None,
        }
    }

    /// The network (all host bits zero) with the same prefix.
    pub fn network(&self) -> Cidr {
        match self.v4_bits() {
            Some((a, mask)) => Cidr { addr: IpAddr::V4(Ipv4Addr::from(a & mask)), prefix: self.prefix },
            None => {
                let IpAddr::V6(a) = self.addr else { unreachable!("v4 handled above") };
                let mask = if self.prefix == 0 { 0 } else { u128::MAX << (128 - self.prefix) };
                Cidr { addr: IpAddr::V6((u128::from(a) & mask).into()), prefix: self.prefix }
            }
        }
    }

    /// Whether `ip` lies inside this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        Cidr { addr: ip, prefix: self.prefix }.network() == self.network() && ip.is_ipv4() == self.addr.is_ipv4()
    }

    /// Whether two networks share any address.
    pub fn overlaps(&self, other: &Cidr) -> bool {
        let shorter = if self.prefix <= other.prefix { self } else { other };
        let longer = if self.prefix <= other.prefix { other } else { self };
        shorter.contains(longer.addr)
    }

    /// The IPv4 broadcast address (`None` for IPv6).
    pub fn broadcast(&self) -> Option<Ipv4Addr> {
        self.v4_bits().map(|(a, mask)| Ipv4Addr::from(a | !mask))
    }

    /// The `n`-th address of the network (0 is the network address), as a
    /// CIDR with this prefix. `None` past the end.
    pub fn nth(&self, n: u32) -> Option<Cidr> {
        let Cidr { addr, prefix } = self.network();
        let host_bits = u32::from(self.max_prefix() - prefix);
        if host_bits < 32 && n >> host_bits != 0 {
            return None;
        }
        let addr = match addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) + n)),
            IpAddr::V6(a) => IpAddr::V6((u128::from(a) + u128::from(n)).into()),
        };
        Some(Cidr { addr, prefix })
    }

    /// Number of usable host addresses: all but the network address, and
    /// for IPv4 the broadcast address; at most `u32::MAX`.
    pub fn host_count(&self) -> u32 {
        let host_bits = u32::from(self.max_prefix() - self.prefix);
        let reserved = if self.addr.is_ipv4() { 2 } else { 1 };
        if host_bits >= 32 { u32::MAX } else { ((1u64 << host_bits).saturating_sub(reserved)) as u32 }
    }

    fn max_prefix(&self) -> u8 {
        if self.addr.is_ipv4() { 32 } else { 128 }
    }

    /// Whether `ip` is a usable host address here: inside, and neither the
    /// network nor the broadcast address.
    pub fn is_host(&self, ip: IpAddr) -> bool {
        self.contains(ip) && ip != self.network().addr && self.broadcast().map(IpAddr::V4) != Some(ip)
    }

    /// A network's gateway (`--gateway`): `wanted` if it is a host address
    /// of this subnet, else, when none is wanted, the first host address.
    pub fn gateway(&self, wanted: Option<&str>) -> Result<Cidr, Error> {
        let Some(g) = wanted else {
            return self.nth(1).ok_or_else(|| Error::Invalid(format!("subnet {self} is too small")));
        };
        let ip: IpAddr = g.parse().map_err(|_| Error::Invalid(format!("gateway {g:?} is not an IP address")))?;
        if !self.is_host(ip) {
            return Err(Error::Invalid(format!(
                "gateway {g} is outside subnet {self} (or is its network or broadcast address)"
            )));
        }
        Cidr::new(ip, self.prefix)
    }
}

impl FromStr for Cidr {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || Error::Invalid(format!("{s:?} is not a CIDR like 172.17.0.0/16"));
        let (addr, prefix) = s.split_once('/').ok_or_else(bad)?;
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        Cidr::new(addr, prefix).map_err(|_| bad())
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn arithmetic() {
        let net = c("172.17.5.9/16");
        assert_eq!(net.network(), c("172.17.0.0/16"));
        assert_eq!(net.nth(1), Some(c("172.17.0.1/16")));
        assert_eq!(net.broadcast(), Some("172.17.255.255".parse().unwrap()));
        assert_eq!(net.host_count(), 65534);
        assert!(net.contains("172.17.200.1".parse().unwrap()));
        assert!(!net.contains("172.18.0.1".parse().unwrap()));
        assert!(!net.is_host("172.17.0.0".parse().unwrap()));
        assert!(!net.is_host("172.17.255.255".parse().unwrap()));
        assert_eq!(c("10.0.0.0/30").nth(4), None);
        assert_eq!(c("10.0.0.0/30").host_count(), 2);
        assert_eq!(c("0.0.0.0/0").nth(u32::MAX), Some(c("255.255.255.255/0")));
    }

    #[test]
    fn ipv6_arithmetic() {
        let net = c("fd00:1:2:3::9/64");
        assert_eq!(net.nth(1), Some(c("fd00:1:2:3::1/64")));
        assert_eq!(net.nth(0x1_0000), Some(c("fd00:1:2:3::1:0/64")));
        assert_eq!(net.host_count(), u32::MAX);
        assert_eq!(c("fd00::/126").nth(3), Some(c("fd00::3/126")));
        assert_eq!(c("fd00::/126").nth(4), None);
        assert_eq!(c("fd00::/126").host_count(), 3);
        assert!(net.is_host("fd00:1:2:3:ffff:ffff:ffff:ffff".parse().unwrap()));
        assert!(!net.is_host("fd00:1:2:3::".parse().unwrap()));
    }

    #[test]
    fn overlaps() {
        assert!(c("10.0.0.0/8").overlaps(&c("10.1.0.0/16")));
        assert!(c("10.1.0.0/16").overlaps(&c("10.0.0.0/8")));
        assert!(!c("10.0.0.0/8").overlaps(&c("11.0.0.0/8")));
        assert!(!c("10.0.0.0/8").overlaps(&c("fd00::/8")));
    }

    #[test]
    fn parse_errors() {
        for bad in ["10.0.0.0", "10.0.0.0/33", "x/8", "fd00::/129", "10.0.0.0/-1"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
        assert_eq!(c("fd00::1/64").network(), c("fd00::/64"));
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn parsing_never_panics_and_round_trips(text in "[0-9a-f.:]{0,40}/[0-9]{0,4}|\\PC{0,30}") {
            if let Ok(c) = text.parse::<Cidr>() {
                prop_assert_eq!(c.to_string().parse::<Cidr>().ok(), Some(c));
            }
        }

        #[test]
        fn arithmetic_never_panics(a in any::<u32>(), prefix in 0u8..=32, n in any::<u32>(), b in any::<u32>()) {
            let c = Cidr::new(IpAddr::V4(Ipv4Addr::from(a)), prefix).unwrap();
            let _ = (c.network(), c.broadcast(), c.host_count(), c.nth(n));
            let ip = IpAddr::V4(Ipv4Addr::from(b));
            prop_assert_eq!(c.contains(ip), c.network().contains(ip));
            let _ = c.is_host(ip);
            if let Some(x) = c.nth(n) {
                prop_assert!(c.contains(x.addr()));
            }
        }

        #[test]
        fn ipv6_nth_stays_inside(a in any::<u128>(), prefix in 0u8..=128, n in any::<u32>()) {
            let c = Cidr::new(IpAddr::V6(a.into()), prefix).unwrap();
            if let Some(x) = c.nth(n) {
                prop_assert!(c.contains(x.addr()));
                prop_assert!(n == 0 || c.is_host(x.addr()));
            } else {
                prop_assert!(prefix > 96);
            }
        }
    }
}

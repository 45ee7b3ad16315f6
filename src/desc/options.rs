//! Socket options asked for in a description, and their checks: values only. They are applied
//! by the mechanism of the same name (`net::options`), and set with the builder's methods.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use crate::desc::error::ConfigError;
use crate::desc::kind::{Domain, SocketType};

/// TCP keepalive timings; unset ones keep the system's defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Keepalive {
    pub(crate) time: Option<Duration>,
    pub(crate) interval: Option<Duration>,
    pub(crate) retries: Option<u32>,
}

/// One multicast group to join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Multicast {
    V4 {
        group: Ipv4Addr,
        interface: Ipv4Addr,
    },
    V6 {
        group: Ipv6Addr,
        interface: u32,
    },
}

/// The options asked for; `None` leaves the system's default alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SocketOptions {
    pub(crate) send_buffer: Option<usize>,
    pub(crate) recv_buffer: Option<usize>,
    pub(crate) only_v6: Option<bool>,
    pub(crate) nodelay: Option<bool>,
    pub(crate) keepalive: Option<bool>,
    pub(crate) keepalive_timings: Keepalive,
    pub(crate) linger: Option<Option<Duration>>,
    pub(crate) ttl: Option<u32>,
    pub(crate) broadcast: Option<bool>,
    pub(crate) multicast: Vec<Multicast>,
}

/// The options as a description holds them: boxed only once one is set. Most factories set
/// none, and an inline copy would cost every idle factory the whole struct.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Options(Option<Box<SocketOptions>>);

impl std::ops::Deref for Options {
    type Target = SocketOptions;

    fn deref(&self) -> &SocketOptions {
        static NONE: std::sync::OnceLock<SocketOptions> = std::sync::OnceLock::new();
        match &self.0 {
            Some(options) => options,
            None => NONE.get_or_init(SocketOptions::default),
        }
    }
}

impl std::ops::DerefMut for Options {
    fn deref_mut(&mut self) -> &mut SocketOptions {
        self.0.get_or_insert_with(Box::default)
    }
}

/// Where `TCP_KEEPINTVL` and `TCP_KEEPCNT` exist (the platforms socket2 offers them on).
const KEEPALIVE_TIMINGS: bool = cfg!(any(
    target_os = "android",
    target_os = "dragonfly",
    target_os = "freebsd",
    target_os = "fuchsia",
    target_os = "illumos",
    target_os = "ios",
    target_os = "linux",
    target_os = "macos",
    target_os = "netbsd",
));

/// The longest keepalive idle time and interval, in seconds: Linux's `MAX_TCP_KEEPIDLE` and
/// `MAX_TCP_KEEPINTVL`; on macOS and FreeBSD what the kernel's 32-bit count of milliseconds
/// (ticks of at most 1 ms on FreeBSD) holds, `u32::MAX / 1000`, beyond which `setsockopt`
/// fails with `EINVAL`; elsewhere what a C `int` holds.
const KEEPALIVE_MAX_SECS: u64 = if cfg!(any(target_os = "linux", target_os = "android")) {
    32_767
} else if cfg!(any(target_vendor = "apple", target_os = "freebsd")) {
    u32::MAX as u64 / 1000
} else {
    i32::MAX as u64
};

/// The most keepalive probes: Linux's `MAX_TCP_KEEPCNT`; elsewhere what a C `int` holds.
const KEEPALIVE_MAX_PROBES: u32 = if cfg!(any(target_os = "linux", target_os = "android")) {
    127
} else {
    i32::MAX as u32
};

fn unfit(option: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::UnfitOption {
        option,
        reason: reason.into(),
    }
}

impl SocketOptions {
    /// Whether any option is set per connection: false keeps the accept path free of work.
    pub(crate) fn per_connection(&self) -> bool {
        self.nodelay.is_some()
            || self.keepalive.is_some()
            || self.linger.is_some()
            || self.ttl.is_some()
    }

    /// Checks made without the OS: each option against the domain and socket type, and its
    /// value against the range the kernel accepts.
    pub(crate) fn validate(
        &self,
        domain: Domain,
        socket_type: SocketType,
    ) -> Result<(), ConfigError> {
        self.check_ranges()?;
        let set = |present: bool, option: &'static str| present.then_some(option);
        let inet_only = [
            set(self.nodelay.is_some(), "TCP_NODELAY"),
            set(self.keepalive.is_some(), "SO_KEEPALIVE"),
            set(self.ttl.is_some(), "IP_TTL"),
            set(self.only_v6.is_some(), "IPV6_V6ONLY"),
            set(self.broadcast.is_some(), "SO_BROADCAST"),
            set(!self.multicast.is_empty(), "IP_ADD_MEMBERSHIP"),
        ];
        let stream_only = [
            set(self.nodelay.is_some(), "TCP_NODELAY"),
            set(self.keepalive.is_some(), "SO_KEEPALIVE"),
            set(self.linger.is_some(), "SO_LINGER"),
        ];
        let datagram_only = [
            set(self.broadcast.is_some(), "SO_BROADCAST"),
            set(!self.multicast.is_empty(), "IP_ADD_MEMBERSHIP"),
        ];
        if domain == Domain::Unix {
            if let Some(option) = inet_only.into_iter().flatten().next() {
                return Err(unfit(
                    option,
                    "an IP option, and this is an AF_UNIX factory",
                ));
            }
        }
        let (wrong_type, reason): (&[Option<&'static str>], _) = match socket_type {
            SocketType::Stream => (
                &datagram_only,
                "a datagram option, and this is a stream factory",
            ),
            SocketType::Datagram => (
                &stream_only,
                "a stream option, and this is a datagram factory",
            ),
        };
        if let Some(option) = wrong_type.iter().flatten().next() {
            return Err(unfit(option, reason));
        }
        let timings = self.keepalive_timings;
        if !KEEPALIVE_TIMINGS && (timings.interval.is_some() || timings.retries.is_some()) {
            return Err(ConfigError::Unsupported("TCP_KEEPINTVL / TCP_KEEPCNT"));
        }
        for join in &self.multicast {
            let (option, group, fits) = match join {
                Multicast::V4 { group, .. } => (
                    "IP_ADD_MEMBERSHIP",
                    IpAddr::V4(*group),
                    domain == Domain::Inet,
                ),
                Multicast::V6 { group, .. } => (
                    "IPV6_JOIN_GROUP",
                    IpAddr::V6(*group),
                    domain == Domain::Inet6,
                ),
            };
            if !group.is_multicast() {
                return Err(unfit(option, format!("{group} is not a multicast group")));
            }
            if !fits {
                return Err(unfit(
                    option,
                    format!("group {group} does not fit domain {domain}"),
                ));
            }
        }
        Ok(())
    }

    /// Values the kernel would refuse (`EINVAL` on each socket) or silently change (a `u32`
    /// that turns into `-1`, "the default", once cast to the C `int`).
    fn check_ranges(&self) -> Result<(), ConfigError> {
        let out = |setting: &'static str, value: String, allowed: String| {
            Err(ConfigError::OutOfRange {
                setting,
                value,
                allowed,
            })
        };
        let whole_seconds = |setting: &'static str, time: Duration, max: u64| {
            if (1..=max).contains(&time.as_secs()) {
                Ok(())
            } else {
                out(
                    setting,
                    format!("{time:?}"),
                    format!("whole seconds from 1 to {max}"),
                )
            }
        };
        let timings = self.keepalive_timings;
        if let Some(time) = timings.time {
            whole_seconds("TCP_KEEPIDLE", time, KEEPALIVE_MAX_SECS)?;
        }
        if let Some(interval) = timings.interval {
            whole_seconds("TCP_KEEPINTVL", interval, KEEPALIVE_MAX_SECS)?;
        }
        if let Some(retries) = timings.retries {
            if !(1..=KEEPALIVE_MAX_PROBES).contains(&retries) {
                return out(
                    "TCP_KEEPCNT",
                    retries.to_string(),
                    format!("1 to {KEEPALIVE_MAX_PROBES}"),
                );
            }
        }
        if let Some(ttl) = self.ttl {
            if !(1..=255).contains(&ttl) {
                return out("IP_TTL", ttl.to_string(), "1 to 255".into());
            }
        }
        for (setting, size) in [
            ("SO_SNDBUF", self.send_buffer),
            ("SO_RCVBUF", self.recv_buffer),
        ] {
            if let Some(size) = size {
                if size > i32::MAX as usize {
                    return out(setting, size.to_string(), format!("0 to {}", i32::MAX));
                }
            }
        }
        if let Some(Some(linger)) = self.linger {
            // SO_LINGER counts whole seconds: 0.5 s would become 0, an abortive close.
            if linger != Duration::ZERO {
                whole_seconds("SO_LINGER", linger, i32::MAX as u64)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(
        options: SocketOptions,
        domain: Domain,
        socket_type: SocketType,
    ) -> Option<&'static str> {
        match options.validate(domain, socket_type) {
            Ok(()) => None,
            Err(ConfigError::UnfitOption { option, .. }) => Some(option),
            Err(other) => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn stream_options_do_not_fit_datagrams_nor_the_reverse() {
        let nodelay = SocketOptions {
            nodelay: Some(true),
            ..SocketOptions::default()
        };
        assert_eq!(
            check(nodelay.clone(), Domain::Inet, SocketType::Stream),
            None
        );
        assert_eq!(
            check(nodelay, Domain::Inet, SocketType::Datagram),
            Some("TCP_NODELAY")
        );
        let linger = SocketOptions {
            linger: Some(None),
            ..SocketOptions::default()
        };
        assert_eq!(
            check(linger.clone(), Domain::Unix, SocketType::Stream),
            None
        );
        assert_eq!(
            check(linger, Domain::Inet, SocketType::Datagram),
            Some("SO_LINGER")
        );
        let broadcast = SocketOptions {
            broadcast: Some(true),
            ..SocketOptions::default()
        };
        assert_eq!(
            check(broadcast, Domain::Inet, SocketType::Stream),
            Some("SO_BROADCAST")
        );
    }

    #[test]
    fn ip_options_do_not_fit_unix_and_groups_must_be_multicast_of_the_domain() {
        let ttl = SocketOptions {
            ttl: Some(9),
            ..SocketOptions::default()
        };
        assert_eq!(check(ttl, Domain::Unix, SocketType::Stream), Some("IP_TTL"));
        let join = |multicast| SocketOptions {
            multicast: vec![multicast],
            ..SocketOptions::default()
        };
        let v4 = |group: [u8; 4]| {
            join(Multicast::V4 {
                group: group.into(),
                interface: Ipv4Addr::UNSPECIFIED,
            })
        };
        assert_eq!(
            check(v4([239, 1, 2, 3]), Domain::Inet, SocketType::Datagram),
            None
        );
        assert_eq!(
            check(v4([10, 1, 2, 3]), Domain::Inet, SocketType::Datagram),
            Some("IP_ADD_MEMBERSHIP")
        );
        assert_eq!(
            check(v4([239, 1, 2, 3]), Domain::Inet6, SocketType::Datagram),
            Some("IP_ADD_MEMBERSHIP")
        );
        let v6 = join(Multicast::V6 {
            group: "ff02::1234".parse().expect("literal"),
            interface: 0,
        });
        assert_eq!(check(v6, Domain::Inet6, SocketType::Datagram), None);
    }

    #[test]
    fn no_per_connection_option_means_no_work_on_accept() {
        let buffers = SocketOptions {
            send_buffer: Some(1 << 16),
            recv_buffer: Some(1 << 16),
            ..SocketOptions::default()
        };
        assert!(!buffers.per_connection());
        let nodelay = SocketOptions {
            nodelay: Some(true),
            ..SocketOptions::default()
        };
        assert!(nodelay.per_connection());
    }
}

//! The services and protocols databases (`/etc/services`, `/etc/protocols`), read off the
//! actor's thread.
//!
//! `getservbyname(3)` and `getprotobyname(3)` are not thread-safe and std offers neither, so the
//! files are parsed here, on the look-up pool (`lookup`). A short built-in table answers the common names on
//! systems without the files (minimal containers often lack them).

use std::io;

const SERVICES: &str = "/etc/services";
const PROTOCOLS: &str = "/etc/protocols";

/// Used when the database file is missing or does not list the name.
const BUILTIN_SERVICES: &[(&str, u16)] = &[
    ("echo", 7),
    ("discard", 9),
    ("daytime", 13),
    ("ftp", 21),
    ("ssh", 22),
    ("telnet", 23),
    ("smtp", 25),
    ("domain", 53),
    ("http", 80),
    ("www", 80),
    ("pop3", 110),
    ("ntp", 123),
    ("imap", 143),
    ("snmp", 161),
    ("https", 443),
    ("submission", 587),
    ("imaps", 993),
    ("pop3s", 995),
];

const BUILTIN_PROTOCOLS: &[(&str, i32)] = &[
    ("ip", 0),
    ("icmp", 1),
    ("tcp", 6),
    ("udp", 17),
    ("ipv6-icmp", 58),
    ("sctp", 132),
    ("udplite", 136),
    ("mptcp", 262),
];

/// The port of service `name` for transport `proto` ("tcp" or "udp"). Blocking: file I/O.
pub(crate) fn service_port(name: &str, proto: &str) -> io::Result<u16> {
    let listed = std::fs::read_to_string(SERVICES)
        .ok()
        .and_then(|text| find_service(&text, name, proto));
    listed
        .or_else(|| builtin(BUILTIN_SERVICES, name))
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "unknown service {} for {proto}",
                    crate::desc::quote::quoted(name)
                ),
            )
        })
}

/// The number of protocol `name`. Blocking: file I/O.
pub(crate) fn protocol_number(name: &str) -> io::Result<i32> {
    let listed = std::fs::read_to_string(PROTOCOLS)
        .ok()
        .and_then(|text| find_protocol(&text, name));
    listed
        .or_else(|| builtin(BUILTIN_PROTOCOLS, name))
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("unknown protocol {}", crate::desc::quote::quoted(name)),
            )
        })
}

fn builtin<T: Copy>(table: &[(&str, T)], name: &str) -> Option<T> {
    table
        .iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(name))
        .map(|&(_, value)| value)
}

/// Fields of the meaningful part of each line (comments after `#` dropped).
fn records(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .map(|line| line.split('#').next().unwrap_or(""))
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .filter(|fields| fields.len() >= 2)
}

/// `services(5)`: `name port/proto [aliases...]`.
fn find_service(text: &str, name: &str, proto: &str) -> Option<u16> {
    records(text).find_map(|fields| {
        let (port, line_proto) = fields[1].split_once('/')?;
        let named = fields[0] == name || fields[2..].contains(&name);
        if named && line_proto == proto {
            port.parse().ok()
        } else {
            None
        }
    })
}

/// `protocols(5)`: `name number [aliases...]`.
fn find_protocol(text: &str, name: &str) -> Option<i32> {
    records(text).find_map(|fields| {
        let named = fields[0].eq_ignore_ascii_case(name)
            || fields[2..]
                .iter()
                .any(|alias| alias.eq_ignore_ascii_case(name));
        if named {
            fields[1].parse().ok()
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVICES_SAMPLE: &str = "\
# comment line
http		80/tcp		www		# WorldWideWeb HTTP
domain		53/tcp
domain		53/udp
syslog		514/udp
";

    #[test]
    fn services_by_name_alias_and_proto() {
        assert_eq!(find_service(SERVICES_SAMPLE, "http", "tcp"), Some(80));
        assert_eq!(find_service(SERVICES_SAMPLE, "www", "tcp"), Some(80));
        assert_eq!(find_service(SERVICES_SAMPLE, "domain", "udp"), Some(53));
        assert_eq!(find_service(SERVICES_SAMPLE, "syslog", "tcp"), None);
        assert_eq!(find_service(SERVICES_SAMPLE, "WorldWideWeb", "tcp"), None);
    }

    #[test]
    fn protocols_by_name_and_alias() {
        let sample = "ip 0 IP\ntcp 6 TCP # transmission control\nudp\t17\tUDP\n";
        assert_eq!(find_protocol(sample, "tcp"), Some(6));
        assert_eq!(find_protocol(sample, "UDP"), Some(17));
        assert_eq!(find_protocol(sample, "sctp"), None);
    }

    #[test]
    fn builtin_tables_answer_without_files() {
        assert_eq!(builtin(BUILTIN_SERVICES, "https"), Some(443));
        assert_eq!(builtin(BUILTIN_PROTOCOLS, "udp"), Some(17));
    }
}

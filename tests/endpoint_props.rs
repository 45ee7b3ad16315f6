//! Property tests of the endpoint parser: it never panics, its errors point inside the input,
//! `Display` writes every endpoint back in a form that parses to the same value, and a bare
//! form (`host:port`, `[v6]:port`, `/path`, `./path`, `@name`) is the same value as its scheme
//! form.

use std::net::{Ipv4Addr, Ipv6Addr};

use actix_socket_factory::Endpoint;
use proptest::prelude::*;

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<Ipv4Addr>().prop_map(|ip| ip.to_string()),
        any::<Ipv6Addr>().prop_map(|ip| format!("[{ip}]")),
        "[a-zA-Z][a-zA-Z0-9_-]{0,20}(\\.[a-zA-Z0-9_-]{1,10}){0,3}",
    ]
}

fn port() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u16>().prop_map(|p| p.to_string()),
        "[a-z][a-z0-9._+-]{0,12}",
    ]
}

/// Well-formed endpoints of every scheme (the family of an IP literal fitting the scheme).
fn endpoint_text() -> impl Strategy<Value = String> {
    let inet = (
        prop::sample::select(vec!["tcp", "udp", "TCP", "Udp"]),
        host(),
        port(),
    )
        .prop_map(|(scheme, host, port)| format!("{scheme}://{host}:{port}"));
    let inet4 = (
        prop::sample::select(vec!["tcp4", "udp4"]),
        any::<Ipv4Addr>(),
        any::<u16>(),
    )
        .prop_map(|(scheme, ip, port)| format!("{scheme}://{ip}:{port}"));
    let inet6 = (
        prop::sample::select(vec!["tcp6", "udp6"]),
        any::<Ipv6Addr>(),
        port(),
    )
        .prop_map(|(scheme, ip, port)| format!("{scheme}://[{ip}]:{port}"));
    let unix = (
        prop::sample::select(vec!["unix:", "unix-dgram:", "unixgram:", "unix://"]),
        prop_oneof![
            "/[^\\x00]{1,90}",
            "[^@/\\x00][^\\x00]{0,60}",
            "@[^\\x00]{1,60}"
        ],
    )
        .prop_map(|(scheme, rest)| format!("{scheme}{rest}"))
        // `unix://` is `unix:` with its optional `//` and no path: not well-formed.
        .prop_filter("a path after the optional //", |text| {
            text.split_once(':').is_some_and(|(_, rest)| rest != "//")
        })
        // Byte length, not char count, is what sun_path limits.
        .prop_filter("fits sun_path", |text| text.len() < 100);
    let systemd = prop_oneof![
        Just("sd-listen".to_owned()),
        "[a-zA-Z0-9._-]{1,30}".prop_map(|name| format!("sd-listen:{name}")),
    ];
    prop_oneof![inet, inet4, inet6, unix, systemd]
}

const SCHEMES: [&str; 11] = [
    "tcp",
    "tcp4",
    "tcp6",
    "udp",
    "udp4",
    "udp6",
    "unix",
    "unix-dgram",
    "unixgram",
    "sd-listen",
    "",
];

/// Endpoints written without a scheme, with the scheme form each stands for:
/// `host:port` and `[v6]:port` (TCP), a path from `/`, `./` or `../` and `@name` (UNIX stream).
fn bare_text() -> impl Strategy<Value = (String, String)> {
    let inet = (host(), port())
        // A host named like a scheme needs the scheme (`tcp://udp:53`).
        .prop_filter("host is not a scheme name", |(host, _)| {
            !SCHEMES.iter().any(|s| s.eq_ignore_ascii_case(host))
        })
        .prop_map(|(host, port)| (format!("{host}:{port}"), format!("tcp://{host}:{port}")));
    let path = (
        prop::sample::select(vec!["/", "./", "../", "@"]),
        "[^\\x00]{1,80}",
    )
        .prop_map(|(lead, rest)| {
            let bare = format!("{lead}{rest}");
            let full = format!(
                "unix:{}{bare}",
                if bare.starts_with("//") { "//" } else { "" }
            );
            (bare, full)
        })
        .prop_filter("fits sun_path", |(bare, _)| {
            bare.strip_prefix('@').unwrap_or(bare).len() <= 100
        });
    prop_oneof![inet, path]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn never_panics_and_errors_point_inside(text in "\\PC{0,80}|(tcp|udp|unix)[:/@\\[\\]0-9a-f.]{0,40}") {
        if let Err(error) = text.parse::<Endpoint>() {
            prop_assert!(error.offset() <= text.len());
            prop_assert!(text.is_char_boundary(error.offset()));
            prop_assert!(!error.to_string().is_empty());
        }
    }

    #[test]
    fn any_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = text.parse::<Endpoint>();
    }

    #[test]
    fn bare_forms_parse_as_their_scheme_forms_and_round_trip((bare, full) in bare_text()) {
        let parsed = bare.parse::<Endpoint>().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let scheme_form = full.parse::<Endpoint>().map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&parsed, &scheme_form);
        let written = parsed.to_string();
        let again: Endpoint = written.parse().map_err(|e| TestCaseError::fail(format!("{written:?}: {e}")))?;
        prop_assert_eq!(&again, &parsed);
        prop_assert_eq!(again.to_string(), written);
    }

    #[test]
    fn display_round_trips(text in endpoint_text()) {
        let parsed = text.parse::<Endpoint>().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let written = parsed.to_string();
        let again: Endpoint = written.parse().map_err(|e| TestCaseError::fail(format!("{written:?}: {e}")))?;
        prop_assert_eq!(&again, &parsed);
        prop_assert_eq!(again.to_string(), written);
    }
}

//! Property tests of the endpoint parser: it never panics, its errors point inside the input,
//! and `Display` writes every endpoint back in a form that parses to the same value.

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
        // Byte length, not char count, is what sun_path limits.
        .prop_filter("fits sun_path", |text| text.len() < 100);
    let systemd = prop_oneof![
        Just("sd-listen".to_owned()),
        "[a-zA-Z0-9._-]{1,30}".prop_map(|name| format!("sd-listen:{name}")),
    ];
    prop_oneof![inet, inet4, inet6, unix, systemd]
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
    fn display_round_trips(text in endpoint_text()) {
        let parsed = text.parse::<Endpoint>().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let written = parsed.to_string();
        let again: Endpoint = written.parse().map_err(|e| TestCaseError::fail(format!("{written:?}: {e}")))?;
        prop_assert_eq!(&again, &parsed);
        prop_assert_eq!(again.to_string(), written);
    }
}

//! POE's spellings of values that have typed Rust forms, for programs that bring them along
//! (from a configuration file, or ported from Perl). Domains, socket types and protocols parse
//! with [`FromStr`](std::str::FromStr) (`"AF_INET6".parse::<Domain>()`); the one left is `Reuse`.

/// Reads POE's `Reuse` parameter: on for `"yes"` or `"on"` (in any case) or a number other than
/// zero (`"1"`, `"2"`, `"-1"`, `"0.5"`); off for anything else (`"no"`, `"off"`, `"0"`, `""`,
/// and also `"true"`, as in POE).
///
/// ```
/// use actix_socket_factory::{reuse_from_poe, SocketFactory};
///
/// assert!(reuse_from_poe("on") && reuse_from_poe("YES") && reuse_from_poe("1"));
/// assert!(!reuse_from_poe("off") && !reuse_from_poe("0") && !reuse_from_poe("true"));
/// let _builder = SocketFactory::builder().reuse(reuse_from_poe("yes"));
/// ```
pub fn reuse_from_poe(value: &str) -> bool {
    value.eq_ignore_ascii_case("yes")
        || value.eq_ignore_ascii_case("on")
        || value
            .trim()
            .parse::<f64>()
            .is_ok_and(|n| n != 0.0 && !n.is_nan())
}

#[cfg(test)]
mod tests {
    use super::reuse_from_poe;

    #[test]
    fn poe_reuse_spellings() {
        for on in ["yes", "Yes", "ON", "on", "1", "2", "-1", "0.5", " 7 "] {
            assert!(reuse_from_poe(on), "{on:?} is on");
        }
        for off in [
            "no",
            "off",
            "0",
            "0.0",
            "",
            "true",
            "y",
            "NaN",
            "onn",
            "yes please",
        ] {
            assert!(!reuse_from_poe(off), "{off:?} is off");
        }
    }
}

//! The endpoint parser on arbitrary input: it must never panic, and whatever it accepts must
//! be written back by `Display` in a form that parses to the same value.
#![no_main]

use actix_socket_factory::Endpoint;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match text.parse::<Endpoint>() {
        Ok(endpoint) => {
            let written = endpoint.to_string();
            let again: Endpoint = written
                .parse()
                .unwrap_or_else(|e| panic!("{text:?} -> {written:?} does not parse: {e}"));
            assert_eq!(again, endpoint, "{text:?} -> {written:?}");
            assert_eq!(again.to_string(), written);
        }
        Err(error) => {
            assert!(error.offset() <= text.len(), "{error:?}");
            let _ = error.to_string();
        }
    }
});

//! Optional integrations: an [`Endpoint`] from a configuration file (`serde`) or a command-line
//! flag (`clap`), read and written as its string form.

#[cfg(any(feature = "serde", feature = "clap"))]
use crate::desc::endpoint::Endpoint;

#[cfg(feature = "serde")]
mod serde_impls {
    use super::Endpoint;
    use std::fmt;

    /// As its string form (`Display`): `"tcp://127.0.0.1:8080"`, `"unix:/run/app.sock"`.
    #[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
    impl serde::Serialize for Endpoint {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.collect_str(self)
        }
    }

    /// From a string in any form [`Endpoint`] parses (`"127.0.0.1:8080"`, `"/run/app.sock"`,
    /// `"udp://[::1]:53"`, ...); a bad string is an error naming what was expected.
    #[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
    impl<'de> serde::Deserialize<'de> for Endpoint {
        fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct Visitor;

            impl serde::de::Visitor<'_> for Visitor {
                type Value = Endpoint;

                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str(
                        "an endpoint string: HOST:PORT, [IPV6]:PORT, /PATH, @NAME, \
                         tcp://HOST:PORT, udp://HOST:PORT, unix:PATH, sd-listen, ...",
                    )
                }

                fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Endpoint, E> {
                    text.parse().map_err(E::custom)
                }
            }

            deserializer.deserialize_str(Visitor)
        }
    }
}

/// clap's value parser for an [`Endpoint`] argument: what `value_parser!(Endpoint)` and
/// `#[arg(...)]` fields of type `Endpoint` use.
///
/// ```
/// use actix_socket_factory::Endpoint;
/// use clap::{value_parser, Arg, Command};
///
/// let command = Command::new("server")
///     .arg(Arg::new("listen").long("listen").value_parser(value_parser!(Endpoint)));
/// let matches = command.try_get_matches_from(["server", "--listen", "127.0.0.1:8080"]).unwrap();
/// let listen: &Endpoint = matches.get_one("listen").unwrap();
/// assert_eq!(listen.to_string(), "tcp://127.0.0.1:8080");
/// ```
#[cfg(feature = "clap")]
#[cfg_attr(docsrs, doc(cfg(feature = "clap")))]
#[derive(Debug, Clone, Copy, Default)]
pub struct EndpointValueParser;

#[cfg(feature = "clap")]
impl clap::builder::TypedValueParser for EndpointValueParser {
    type Value = Endpoint;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<Endpoint, clap::Error> {
        use clap::error::ErrorKind;
        let Some(text) = value.to_str() else {
            return Err(clap::Error::new(ErrorKind::InvalidUtf8).with_cmd(cmd));
        };
        text.parse()
            .map_err(|error: crate::desc::endpoint::EndpointError| {
                let arg = arg.map_or_else(|| "...".to_owned(), ToString::to_string);
                // The value quoted bounded and escaped: a megabyte of argument, or a terminal
                // escape sequence, never reaches the terminal whole.
                clap::Error::raw(
                    ErrorKind::ValueValidation,
                    format!(
                        "invalid value {} for '{arg}': {} (at byte {})\n",
                        crate::desc::quote::quoted(text),
                        error.kind(),
                        error.offset()
                    ),
                )
                .with_cmd(cmd)
            })
    }
}

#[cfg(feature = "clap")]
#[cfg_attr(docsrs, doc(cfg(feature = "clap")))]
impl clap::builder::ValueParserFactory for Endpoint {
    type Parser = EndpointValueParser;

    fn value_parser() -> EndpointValueParser {
        EndpointValueParser
    }
}

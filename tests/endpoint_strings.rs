//! Endpoint strings as users type them, end to end: `bind("127.0.0.1:0")`,
//! `connect(String)`, a bare UNIX path, a bad string reported as a config failure, and the
//! `serde` and `clap` features reading an endpoint from a config file or a flag.

mod util;

#[cfg(any(feature = "serde", feature = "clap"))]
use actix_socket_factory::Endpoint;
use actix_socket_factory::{GetSockName, Operation, SocketAddress, SocketType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use util::*;

#[actix::test]
async fn bare_host_port_strings_bind_and_connect() {
    let mut events = Events::start();
    let server = events.builder().bind("127.0.0.1:0").start();
    let local = server.send(GetSockName).await.unwrap().unwrap();
    let SocketAddress::Inet(addr) = local else {
        panic!("{local:?}");
    };
    assert!(addr.ip().is_loopback() && addr.port() != 0);

    // A String, as it comes from a config file; the client is a second factory.
    let _client = events
        .builder()
        .connect(format!("127.0.0.1:{}", addr.port()))
        .start();
    let mut sockets = Vec::new();
    for _ in 0..2 {
        let created = events.next_created(LIMIT).await.expect("SocketCreated");
        assert_eq!(created.socket_type, SocketType::Stream);
        sockets.push(created.into_tcp_stream().expect("TCP stream"));
    }
    let (mut a, mut b) = (sockets.pop().unwrap(), sockets.pop().unwrap());
    a.write_all(b"ping").await.unwrap();
    let mut buf = [0; 4];
    b.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
}

#[actix::test]
async fn bare_ipv6_and_path_strings_bind() {
    let mut events = Events::start();
    let server = events.builder().bind("[::1]:0").start();
    match server.send(GetSockName).await.unwrap() {
        Ok(SocketAddress::Inet(addr)) => assert!(addr.is_ipv6() && addr.ip().is_loopback()),
        // A machine without IPv6 loopback says so with the OS's error.
        Err(error) => {
            let failed = events.next_failed(LIMIT).await.expect("SocketFailed");
            eprintln!("no IPv6 loopback: {error} / {failed}");
        }
        Ok(other) => panic!("{other:?}"),
    }

    let (_dir, path) = temp_socket_path("bare.sock");
    let text = path.to_str().expect("UTF-8 temp path").to_owned();
    assert!(text.starts_with('/'));
    let server = events.builder().bind(text.as_str()).start();
    let local = server.send(GetSockName).await.unwrap().unwrap();
    assert_eq!(local, SocketAddress::Unix(path.clone()));
    let _client = tokio::net::UnixStream::connect(&path)
        .await
        .expect("connect");
    let created = events.next_created(LIMIT).await.expect("SocketCreated");
    created.into_std_unix_stream().expect("a UNIX stream");
}

#[actix::test]
async fn a_bad_string_is_one_config_failure_naming_what_was_expected() {
    let mut events = Events::start();
    let _factory = events.builder().bind("app.sock").start();
    let failed = events.next_failed(LIMIT).await.expect("SocketFailed");
    assert_eq!(failed.operation, Operation::Config, "{failed}");
    assert_eq!(failed.errno, Some(libc::EINVAL), "{failed}");
    let text = failed.error.to_string();
    assert!(text.contains("\"app.sock\""), "{text}");
    assert!(text.contains("HOST:PORT") && text.contains("./"), "{text}");
    assert!(events.try_created().is_none());

    let error = events.builder().connect("localhost").build().unwrap_err();
    assert!(
        matches!(error, actix_socket_factory::ConfigError::InvalidEndpoint(_)),
        "{error:?}"
    );
    assert!(error.to_string().contains("expected HOST:PORT"), "{error}");
}

#[cfg(feature = "serde")]
#[test]
fn serde_reads_and_writes_the_string_form() {
    let list: Vec<Endpoint> =
        serde_json::from_str(r#"["127.0.0.1:8080", "/run/app.sock", "udp://[::1]:53", "@name"]"#)
            .expect("endpoints");
    assert_eq!(list[0], "tcp://127.0.0.1:8080".parse::<Endpoint>().unwrap());
    assert_eq!(list[2].socket_type(), SocketType::Datagram);
    assert_eq!(
        serde_json::to_string(&list).unwrap(),
        r#"["tcp://127.0.0.1:8080","unix:/run/app.sock","udp://[::1]:53","unix:@name"]"#
    );
    let again: Vec<Endpoint> =
        serde_json::from_str(&serde_json::to_string(&list).unwrap()).unwrap();
    assert_eq!(again, list);

    let error = serde_json::from_str::<Endpoint>(r#""tcp://[::1]""#).unwrap_err();
    assert!(error.to_string().contains("missing \":PORT\""), "{error}");
    let error = serde_json::from_str::<Endpoint>("8080").unwrap_err();
    assert!(error.to_string().contains("an endpoint string"), "{error}");
}

#[cfg(feature = "clap")]
#[test]
fn clap_parses_a_flag_into_an_endpoint() {
    use clap::{value_parser, Arg, Command};

    let command = Command::new("server").arg(
        Arg::new("listen")
            .long("listen")
            .value_parser(value_parser!(Endpoint)),
    );
    let matches = command
        .clone()
        .try_get_matches_from(["server", "--listen", "/run/app.sock"])
        .expect("parses");
    let listen: &Endpoint = matches.get_one("listen").expect("given");
    assert_eq!(listen.to_string(), "unix:/run/app.sock");

    let error = command
        .try_get_matches_from(["server", "--listen", "127.0.0.1:99999"])
        .unwrap_err();
    assert_eq!(error.kind(), clap::error::ErrorKind::ValueValidation);
    let text = error.to_string();
    assert!(text.contains("--listen"), "{text}");
    assert!(text.contains("port 99999 is out of range"), "{text}");
}

//! One stream type for mixed listeners: a server on TCP and on a UNIX path serves both with one
//! session type over `SocketStream`, through `tokio_util::codec::Framed` and actix's
//! `StreamHandler`, without branching on the family.

mod util;

use actix::io::{FramedWrite, WriteHandler};
use actix::prelude::*;
use actix_socket_factory::{
    Domain, SocketCreated, SocketFactory, SocketFailed, SocketStream, SocketType,
};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, WriteHalf};
use tokio_util::codec::{Framed, FramedRead, LinesCodec, LinesCodecError};
use util::*;

/// The owner: one session type for every delivered stream.
struct Server;

impl Actor for Server {
    type Context = Context<Self>;
}

impl Handler<SocketCreated> for Server {
    type Result = ();

    fn handle(&mut self, created: SocketCreated, _: &mut Context<Self>) {
        let stream = created.into_stream().expect("a stream");
        Session::serve(stream);
    }
}

impl Handler<SocketFailed> for Server {
    type Result = ();

    fn handle(&mut self, failed: SocketFailed, _: &mut Context<Self>) {
        panic!("{failed}");
    }
}

/// Lines in, `<domain> <peer> <line>` out: an actix `StreamHandler` over `FramedRead`.
struct Session {
    out: FramedWrite<String, WriteHalf<SocketStream>, LinesCodec>,
    about: String,
}

impl Session {
    fn serve(stream: SocketStream) {
        let about = format!(
            "{} {}",
            stream.domain(),
            match (stream.peer_addr(), stream.credentials()) {
                (Some(addr), _) => addr.to_string(),
                (None, Some(credentials)) => format!("pid={:?}", credentials.pid),
                (None, None) => "unknown".to_owned(),
            }
        );
        Session::create(|ctx| {
            let (read, write) = tokio::io::split(stream);
            ctx.add_stream(FramedRead::new(read, LinesCodec::new()));
            Session {
                out: FramedWrite::new(write, LinesCodec::new(), ctx),
                about,
            }
        });
    }
}

impl Actor for Session {
    type Context = Context<Self>;
}

impl StreamHandler<Result<String, LinesCodecError>> for Session {
    fn handle(&mut self, line: Result<String, LinesCodecError>, ctx: &mut Context<Self>) {
        match line {
            Ok(line) => self.out.write(format!("{} {line}", self.about)),
            Err(_) => ctx.stop(),
        }
    }
}

impl WriteHandler<LinesCodecError> for Session {}

#[actix::test]
async fn one_session_type_serves_tcp_and_unix_clients() {
    let server = Server.start();
    let tcp = SocketFactory::builder()
        .bind("127.0.0.1:0")
        .owner(&server)
        .spawn()
        .await
        .expect("TCP server");
    let (_dir, path) = temp_socket_path("stream.sock");
    let _unix = SocketFactory::builder()
        .bind(path.as_path())
        .owner(&server)
        .spawn()
        .await
        .expect("UNIX server");

    // A TCP client, through Framed on its side too.
    let client = tokio::net::TcpStream::connect(tcp.local_addr().unwrap())
        .await
        .unwrap();
    let me = client.local_addr().unwrap();
    let mut lines = Framed::new(client, LinesCodec::new());
    lines.send("over tcp").await.unwrap();
    let echo = tokio::time::timeout(LIMIT, lines.next()).await.unwrap();
    assert_eq!(echo.unwrap().unwrap(), format!("AF_INET {me} over tcp"));

    // A UNIX client: the same session, its credentials instead of an address.
    let mut client = BufReader::new(tokio::net::UnixStream::connect(&path).await.unwrap());
    client.get_mut().write_all(b"over unix\n").await.unwrap();
    let mut echo = String::new();
    tokio::time::timeout(LIMIT, client.read_line(&mut echo))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        echo,
        format!("AF_UNIX pid=Some({}) over unix\n", std::process::id())
    );
}

#[actix::test]
async fn a_datagram_socket_is_not_a_stream() {
    let mut events = Events::start();
    events.builder().bind("udp://127.0.0.1:0").start();
    let created = events.next_created(LIMIT).await.expect("a datagram socket");
    assert_eq!(
        (created.domain, created.socket_type),
        (Domain::Inet, SocketType::Datagram)
    );
    let error = created.into_stream().unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn outside_a_runtime_it_is_an_error_not_a_panic() {
    let system = System::new();
    let (created, _theirs) = system
        .block_on(async {
            actix_socket_factory::testing::created_tcp_pair(
                actix_socket_factory::testing::factory_id(1),
            )
        })
        .unwrap();
    let error = created.into_stream().unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::Other, "{error}");
}

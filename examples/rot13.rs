//! A rot13 line server: the synopsis of POE::Wheel::SocketFactory, as actors.
//!
//! ```text
//! cargo run --example rot13            # listens on 127.0.0.1:12345
//! cargo run --example rot13 -- 4000    # or another port (also: PORT=4000)
//! nc 127.0.0.1 12345                   # type a line, get it back in rot13
//! ```
//!
//! The factory runs on its own Arbiter; the server actor receives each accepted socket as a
//! plain non-blocking socket and turns it into a tokio stream on its own Arbiter, where one
//! session actor per client serves it.
//!
//! SIGTERM, SIGINT (Ctrl-C) or SIGQUIT stop it as a service stops: the factory closes its
//! listener, then the program exits with status 0. `RUST_LOG=debug` shows the factory's life.

use actix::io::{FramedWrite, WriteHandler};
use actix::prelude::*;
use actix_socket_factory::{
    run_until_signal, GetSockName, SocketCreated, SocketFactory, SocketFailed,
};
use tokio::io::WriteHalf;
use tokio::net::TcpStream;
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};

/// The owner of the factory: POE's `on_client_accept` and `on_server_error`.
struct Server;

impl Actor for Server {
    type Context = Context<Self>;
}

impl Handler<SocketCreated> for Server {
    type Result = ();

    fn handle(&mut self, created: SocketCreated, _: &mut Context<Self>) {
        let peer = created.peer.clone();
        // One call turns the runtime-free socket into a tokio stream on this Arbiter.
        match created.into_tcp_stream() {
            Ok(stream) => {
                if let Some(peer) = peer {
                    println!("client {peer} connected");
                }
                Session::serve(stream);
            }
            Err(error) => eprintln!("cannot use the accepted socket: {error}"),
        }
    }
}

impl Handler<SocketFailed> for Server {
    type Result = ();

    fn handle(&mut self, failed: SocketFailed, _: &mut Context<Self>) {
        eprintln!(
            "Server {} error {:?}: {}",
            failed.operation, failed.errno, failed.error
        );
    }
}

/// One client: lines in, rot13 lines out (POE's `on_client_input`).
struct Session {
    out: FramedWrite<String, WriteHalf<TcpStream>, LinesCodec>,
}

impl Session {
    fn serve(stream: TcpStream) {
        Session::create(|ctx| {
            let (read, write) = tokio::io::split(stream);
            ctx.add_stream(FramedRead::new(
                read,
                LinesCodec::new_with_max_length(64 * 1024),
            ));
            Session {
                out: FramedWrite::new(write, LinesCodec::new(), ctx),
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
            Ok(line) => self.out.write(rot13(&line)),
            Err(_) => ctx.stop(),
        }
    }

    /// The client sent EOF: flush the replies still queued, then close (the default would
    /// stop the actor at once and lose them).
    fn finished(&mut self, _: &mut Context<Self>) {
        self.out.close();
    }
}

impl WriteHandler<LinesCodecError> for Session {}

fn rot13(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            'a'..='m' | 'A'..='M' => (c as u8 + 13) as char,
            'n'..='z' | 'N'..='Z' => (c as u8 - 13) as char,
            _ => c,
        })
        .collect()
}

fn port() -> u16 {
    let given = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("PORT").ok());
    match given.map(|text| text.parse::<u16>()) {
        None => 12345,
        Some(Ok(port)) => port,
        Some(Err(_)) => {
            eprintln!("usage: rot13 [PORT]   (a number from 0 to 65535)");
            std::process::exit(2);
        }
    }
}

#[actix::main]
async fn main() -> std::io::Result<()> {
    env_logger::init();
    let port = port();
    let factory_arbiter = Arbiter::new();
    // The factory holds its owner weakly, as an actix child holds its parent: keep the owner's
    // address for as long as the server should run.
    let server = Server.start();
    let factory = SocketFactory::builder()
        .bind_address("127.0.0.1")
        .bind_port(port)
        .owner(&server)
        .start_in_arbiter(&factory_arbiter.handle());
    // Where it listens, or why not (a port in use: the error, exit status 1).
    let local = factory
        .send(GetSockName)
        .await
        .map_err(std::io::Error::other)??;
    println!("rot13 server listening on {local}");
    println!(
        "talk to it with: nc 127.0.0.1 {}",
        local.port().unwrap_or(port)
    );
    // SIGTERM, SIGINT, SIGQUIT: stop accepting, close the listener, exit 0.
    run_until_signal([factory]).await?;
    Ok(())
}

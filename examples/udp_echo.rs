//! A UDP echo server: POE's datagram socket, delivered by the factory as soon as it is bound.
//!
//! ```text
//! cargo run --example udp_echo            # 127.0.0.1:12346
//! cargo run --example udp_echo -- 4000    # or another port (0: the kernel picks)
//! nc -u 127.0.0.1 12346                   # type a line, get it back
//! ```
//!
//! SIGTERM, SIGINT (Ctrl-C) or SIGQUIT end it with status 0. `RUST_LOG=debug` shows the
//! factory's life.

use actix::prelude::*;
use actix_socket_factory::{
    run_until_signal, SocketCreated, SocketFactory, SocketFailed, SocketType,
};

/// The owner: serves the one socket the factory makes.
struct Server;

impl Actor for Server {
    type Context = Context<Self>;
}

impl Handler<SocketCreated> for Server {
    type Result = ();

    fn handle(&mut self, created: SocketCreated, _: &mut Context<Self>) {
        // The factory stops once it has handed the socket over: ask the socket where it is.
        let socket = match created.into_udp_socket() {
            Ok(socket) => socket,
            Err(error) => {
                eprintln!("cannot use the socket: {error}");
                System::current().stop();
                return;
            }
        };
        if let Ok(local) = socket.local_addr() {
            println!("UDP echo server on {local}");
            println!("talk to it with: nc -u {} {}", local.ip(), local.port());
        }
        actix::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match socket.recv_from(&mut buf).await {
                    Ok((len, from)) => {
                        if let Err(error) = socket.send_to(&buf[..len], from).await {
                            eprintln!("send to {from}: {error}");
                        }
                    }
                    Err(error) => {
                        eprintln!("recv: {error}");
                        break;
                    }
                }
            }
        });
    }
}

impl Handler<SocketFailed> for Server {
    type Result = ();

    fn handle(&mut self, failed: SocketFailed, _: &mut Context<Self>) {
        eprintln!("{failed}");
    }
}

fn port() -> u16 {
    match std::env::args().nth(1).map(|text| text.parse::<u16>()) {
        None => 12346,
        Some(Ok(port)) => port,
        Some(Err(_)) => {
            eprintln!("usage: udp_echo [PORT]   (a number from 0 to 65535)");
            std::process::exit(2);
        }
    }
}

#[actix::main]
async fn main() -> std::io::Result<()> {
    env_logger::init();
    let port = port();
    // The factory holds its owner weakly, as an actix child holds its parent: keep the owner's
    // address for as long as the server should run.
    let server = Server.start();
    let factory = SocketFactory::builder()
        .socket_type(SocketType::Datagram) // SocketType => SOCK_DGRAM
        .bind_address("127.0.0.1")
        .bind_port(port)
        .owner(&server)
        .spawn()
        .await
        .map_err(std::io::Error::other)?; // a port in use: the error, exit status 1
                                          // SIGTERM, SIGINT, SIGQUIT: stop (the socket closes with the owner), exit 0.
    run_until_signal([factory.addr]).await?;
    Ok(())
}

//! An echo server on a UNIX socket: POE's UNIX stream server, as actors, with the socket file
//! looked after.
//!
//! ```text
//! cargo run --example unix_echo                       # listens on $TMPDIR/actix-socket-factory-echo.sock
//! cargo run --example unix_echo -- /run/user/1000/e   # or another path
//! nc -U /tmp/actix-socket-factory-echo.sock           # type a line, get it back
//! ```
//!
//! The file is made with mode 0600 (never more open, not even for a moment), a stale file left by
//! a crash is replaced, a live server at the path is not. SIGTERM, SIGINT (Ctrl-C) or SIGQUIT stop
//! the factory, which removes the file it made, and the program exits with status 0.
//! `RUST_LOG=debug` shows the factory's life.

use std::path::PathBuf;

use actix::prelude::*;
use actix_socket_factory::{
    run_until_signal, GetSockName, SocketCreated, SocketFactory, SocketFailed,
};

/// The owner of the factory: one echo task per accepted client.
struct Server;

impl Actor for Server {
    type Context = Context<Self>;
}

impl Handler<SocketCreated> for Server {
    type Result = ();

    fn handle(&mut self, created: SocketCreated, _: &mut Context<Self>) {
        // accept(2) names no UNIX client (POE says the same): count them instead.
        match created.into_unix_stream() {
            Ok(mut stream) => {
                println!("client connected");
                actix::spawn(async move {
                    let (mut read, mut write) = stream.split();
                    if let Err(error) = tokio::io::copy(&mut read, &mut write).await {
                        eprintln!("client: {error}");
                    }
                    println!("client gone");
                });
            }
            Err(error) => eprintln!("cannot use the accepted socket: {error}"),
        }
    }
}

impl Handler<SocketFailed> for Server {
    type Result = ();

    fn handle(&mut self, failed: SocketFailed, _: &mut Context<Self>) {
        eprintln!("{failed}");
    }
}

fn path() -> PathBuf {
    std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("actix-socket-factory-echo.sock"))
}

#[actix::main]
async fn main() -> std::io::Result<()> {
    env_logger::init();
    let path = path();
    // The factory holds its owner weakly, as an actix child holds its parent: keep the owner's
    // address for as long as the server should run.
    let server = Server.start();
    let factory = SocketFactory::builder()
        .bind_address(path.as_path()) // a path implies AF_UNIX
        .unix_mode(0o600)
        .replace_stale_socket(true)
        .owner(&server)
        .start();
    // Where it listens, or why not (the error, exit status 1).
    let local = factory
        .send(GetSockName)
        .await
        .map_err(std::io::Error::other)??;
    println!("echo server listening on {local}");
    println!("talk to it with: nc -U {local}");
    // SIGTERM, SIGINT, SIGQUIT: stop the factory (it removes its socket file), exit 0.
    run_until_signal([factory]).await?;
    Ok(())
}

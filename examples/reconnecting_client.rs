//! A client that keeps trying, the way actix programs keep actors alive: under a `Supervisor`.
//!
//! ```text
//! cargo run --example reconnecting_client     # runs on loopback and exits
//! RUST_LOG=debug cargo run --example reconnecting_client
//! ```
//!
//! A supervised client factory retries a refused connect by itself: each failure is reported to
//! the owner as a `SocketFailed`, and the factory connects again after a delay that grows
//! (100 ms, 200 ms, 400 ms, ... up to 5 s), so a server that is down costs no CPU. Once it has
//! delivered its socket the factory's job is done; when that connection ends, the owner starts a
//! new one. Every message carries the id of the factory that sent it, so the owner tells its
//! current factory from one it has given up on and drops a late delivery from the latter.
//!
//! Here the server is missing at first, comes up after a few refused attempts, serves one
//! connection, and serves the next one the owner makes.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_socket_factory::{FactoryId, SocketCreated, SocketFactory, SocketFailed};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// How many connections to make before the example ends.
const SESSIONS: usize = 2;

/// The owner: keeps one supervised client factory at a time.
struct Client {
    target: SocketAddr,
    /// The factory whose deliveries count (anything else is late), and its address: a
    /// Supervisor restarts its actor only while someone holds the address.
    current: Option<(FactoryId, Addr<SocketFactory>)>,
    refused: usize,
    sessions: usize,
    started: Instant,
}

impl Client {
    /// Starts a supervised client factory for the target and makes it the current one.
    fn connect(&mut self, ctx: &mut Context<Self>) {
        let built = SocketFactory::builder()
            .connect(self.target)
            .connect_timeout(Duration::from_secs(2))
            .owner(&ctx.address())
            .build(); // build(): the factory keeps its description, so it can be made again
        match built {
            Ok(factory) => {
                let id = factory.id();
                println!("factory {id}: connecting to {}", self.target);
                // Replacing the old address lets the old factory's Supervisor end.
                self.current = Some((id, Supervisor::start(|_| factory)));
            }
            Err(error) => {
                eprintln!("bad description: {error}");
                System::current().stop();
            }
        }
    }
}

impl Client {
    fn current_id(&self) -> Option<FactoryId> {
        self.current.as_ref().map(|(id, _)| *id)
    }
}

impl Actor for Client {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.connect(ctx);
    }
}

impl Handler<SocketCreated> for Client {
    type Result = ();

    fn handle(&mut self, created: SocketCreated, ctx: &mut Context<Self>) {
        if self.current_id() != Some(created.id) {
            // A factory given up on delivered after all: drop it (closing the socket).
            println!("ignoring a late socket from factory {}", created.id);
            return;
        }
        self.sessions += 1;
        println!(
            "factory {}: connected after {} refused attempts, {:.1?} after start",
            created.id,
            self.refused,
            self.started.elapsed()
        );
        let stream = match created.into_tcp_stream() {
            Ok(stream) => stream,
            Err(error) => {
                eprintln!("cannot use the socket: {error}");
                System::current().stop();
                return;
            }
        };
        let session = async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                println!("server says {line:?}");
            }
        };
        // When the server closes the connection, connect again, or end.
        ctx.spawn(session.into_actor(self).map(|(), client, ctx| {
            println!("connection {} closed", client.sessions);
            if client.sessions < SESSIONS {
                client.refused = 0;
                client.connect(ctx);
            } else {
                System::current().stop();
            }
        }));
    }
}

impl Handler<SocketFailed> for Client {
    type Result = ();

    fn handle(&mut self, failed: SocketFailed, _: &mut Context<Self>) {
        if self.current_id() != Some(failed.id) {
            return; // from a factory given up on
        }
        self.refused += 1;
        println!("{failed}; its supervisor tries again");
    }
}

/// The server that is missing at first: it comes up on `addr` after `delay` and greets each
/// client once, then closes its connection.
async fn late_server(addr: SocketAddr, delay: Duration) -> std::io::Result<()> {
    tokio::time::sleep(delay).await;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("server up on {addr}");
    for n in 1..=SESSIONS {
        let (mut stream, _) = listener.accept().await?;
        stream.write_all(format!("hello #{n}\n").as_bytes()).await?;
    }
    Ok(())
}

fn main() -> std::io::Result<()> {
    env_logger::init();
    // A loopback port nothing listens on yet.
    let target = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let system = System::new();
    let _client = system.block_on(async {
        actix::spawn(async move {
            if let Err(error) = late_server(target, Duration::from_millis(500)).await {
                eprintln!("server: {error}");
                System::current().stop();
            }
        });
        Client {
            target,
            current: None,
            refused: 0,
            sessions: 0,
            started: Instant::now(),
        }
        .start()
    });
    system.run()
}

//! Multi-core accept: one factory per Arbiter on one address, with SO_REUSEPORT, so the kernel
//! spreads connections across the Arbiters' threads.
//!
//! ```text
//! cargo run --example multicore            # 2 Arbiters, 2000 loopback clients, then exits
//! cargo run --example multicore -- 4 10000 # 4 Arbiters, 10000 clients
//! ```
//!
//! SIGTERM, SIGINT (Ctrl-C) or SIGQUIT stop every member and end it early with status 0.
//! `RUST_LOG=debug` shows the factories' life.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_socket_factory::{
    run_until_signal, FactoryGroup, FactoryId, SocketCreated, SocketFactory, SocketFailed,
};

/// Counts the connections each member delivered; drops them (closing them) at once.
struct Owner {
    per_member: BTreeMap<FactoryId, usize>,
    expected: usize,
    done: Option<tokio::sync::oneshot::Sender<BTreeMap<FactoryId, usize>>>,
}

impl Actor for Owner {
    type Context = Context<Self>;
}

impl Handler<SocketCreated> for Owner {
    type Result = ();

    fn handle(&mut self, created: SocketCreated, _: &mut Context<Self>) {
        *self.per_member.entry(created.id).or_default() += 1;
        if self.per_member.values().sum::<usize>() == self.expected {
            if let Some(done) = self.done.take() {
                let _ = done.send(self.per_member.clone());
            }
        }
    }
}

impl Handler<SocketFailed> for Owner {
    type Result = ();

    fn handle(&mut self, failed: SocketFailed, _: &mut Context<Self>) {
        eprintln!("{failed}");
    }
}

#[actix::main]
async fn main() -> std::io::Result<()> {
    env_logger::init();
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>());
    let members = args.next().and_then(Result::ok).unwrap_or(2).max(1);
    let clients = args.next().and_then(Result::ok).unwrap_or(2000);

    let arbiters: Vec<Arbiter> = (0..members).map(|_| Arbiter::new()).collect();
    let handles: Vec<ArbiterHandle> = arbiters.iter().map(Arbiter::handle).collect();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let owner = Owner {
        per_member: BTreeMap::new(),
        expected: clients,
        done: Some(done_tx),
    }
    .start();
    let builder = SocketFactory::builder()
        .bind_address("127.0.0.1")
        .owner(&owner);
    // A bind failure (the address taken, ...) is the error, exit status 1.
    let group = FactoryGroup::start(builder, &handles).await?;
    let addr = group
        .local_addr()
        .as_inet()
        .expect("an INET group listens on an IP address");
    println!("{members} factories listening on {addr} (SO_REUSEPORT)");

    let started = Instant::now();
    let load = std::thread::spawn(move || {
        for _ in 0..clients {
            // Connect and close: the kernel completes the handshake from the listen queue.
            if let Err(error) = std::net::TcpStream::connect(addr) {
                eprintln!("connect: {error}");
            }
        }
    });
    // The load's end, or SIGTERM, SIGINT, SIGQUIT first (every member stopped, exit status 0).
    let stopped = run_until_signal(group.members().to_vec());
    tokio::select! {
        arrived = tokio::time::timeout(Duration::from_secs(60), done_rx) => match arrived {
            Ok(Ok(per_member)) => {
                let elapsed = started.elapsed();
                for (id, count) in &per_member {
                    println!("factory {id}: {count} connections");
                }
                println!(
                    "{clients} connections in {elapsed:.2?} ({:.0}/s)",
                    clients as f64 / elapsed.as_secs_f64()
                );
            }
            _ => eprintln!("not every connection arrived within 60 s"),
        },
        caught = stopped => {
            caught?;
            return Ok(());
        }
    }
    let _ = load.join();
    group.stop();
    Ok(())
}

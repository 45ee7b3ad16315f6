//! A supervised server tree, the shape actix servers are built in:
//!
//! - a `Supervisor` restarts the socket factory after a failure (here: its port is taken at
//!   start, and freed a moment later);
//! - each connection is served by its own `Connection` actor: `StreamHandler` on the read half,
//!   `FramedWrite` on the write half;
//! - stopping the root stops the factory and every connection, closing every socket.
//!
//! ```text
//! cargo run --example supervised_tree      # runs the scenario above on loopback and exits
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use actix::io::{FramedWrite, WriteHandler};
use actix::prelude::*;
use actix_socket_factory::{SocketCreated, SocketFactory, SocketFailed, StopFactory};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, WriteHalf};
use tokio::net::TcpStream;
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};

/// The root: owns the supervised factory and the connections.
struct Root {
    addr: SocketAddr,
    factory: Option<Addr<SocketFactory>>,
    connections: HashMap<usize, Addr<Connection>>,
    next: usize,
}

impl Actor for Root {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let factory = SocketFactory::builder()
            .bind_address(self.addr.ip())
            .bind_port(self.addr.port())
            .on_success(ctx.address().recipient())
            .on_failure(ctx.address().recipient())
            .build();
        match factory {
            // The Supervisor makes the factory again, from the same description, after a failure.
            Ok(factory) => self.factory = Some(Supervisor::start(move |_| factory)),
            Err(error) => {
                eprintln!("bad description: {error}");
                ctx.stop();
            }
        }
    }

    fn stopping(&mut self, _: &mut Context<Self>) -> Running {
        if let Some(factory) = self.factory.take() {
            factory.do_send(StopFactory);
        }
        for (_, connection) in self.connections.drain() {
            connection.do_send(Close);
        }
        println!("root: stopping; factory and connections told to close");
        Running::Stop
    }
}

impl Handler<SocketCreated> for Root {
    type Result = ();

    fn handle(&mut self, created: SocketCreated, ctx: &mut Context<Self>) {
        let Ok(stream) = created.into_tcp_stream() else {
            return;
        };
        let key = self.next;
        self.next += 1;
        let root = ctx.address();
        let connection = Connection::create(|cctx| {
            let (read, write) = tokio::io::split(stream);
            cctx.add_stream(FramedRead::new(read, LinesCodec::new_with_max_length(4096)));
            Connection {
                key,
                root,
                out: FramedWrite::new(write, LinesCodec::new(), cctx),
            }
        });
        self.connections.insert(key, connection);
    }
}

impl Handler<SocketFailed> for Root {
    type Result = ();

    fn handle(&mut self, failed: SocketFailed, _: &mut Context<Self>) {
        println!("root: {failed} (the supervisor will try again)");
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Gone(usize);

impl Handler<Gone> for Root {
    type Result = ();

    fn handle(&mut self, Gone(key): Gone, _: &mut Context<Self>) {
        self.connections.remove(&key);
    }
}

/// Stop the whole tree.
#[derive(Message)]
#[rtype(result = "()")]
struct Shutdown;

impl Handler<Shutdown> for Root {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

/// One client: replies to each line with the line upper-cased.
struct Connection {
    key: usize,
    root: Addr<Root>,
    out: FramedWrite<String, WriteHalf<TcpStream>, LinesCodec>,
}

impl Actor for Connection {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.root.do_send(Gone(self.key));
    }
}

impl StreamHandler<Result<String, LinesCodecError>> for Connection {
    fn handle(&mut self, line: Result<String, LinesCodecError>, ctx: &mut Context<Self>) {
        match line {
            Ok(line) => self.out.write(line.to_uppercase()),
            Err(_) => ctx.stop(),
        }
    }

    /// The client sent EOF: flush the replies still queued, then close (the default would
    /// stop the actor at once and lose them).
    fn finished(&mut self, _: &mut Context<Self>) {
        self.out.close();
    }
}

impl WriteHandler<LinesCodecError> for Connection {}

#[derive(Message)]
#[rtype(result = "()")]
struct Close;

impl Handler<Close> for Connection {
    type Result = ();

    fn handle(&mut self, _: Close, ctx: &mut Context<Self>) {
        self.out.close();
        ctx.stop();
    }
}

async fn ask(addr: SocketAddr, line: &str) -> std::io::Result<(String, BufReader<TcpStream>)> {
    let mut stream = BufReader::new(TcpStream::connect(addr).await?);
    stream
        .get_mut()
        .write_all(format!("{line}\n").as_bytes())
        .await?;
    let mut reply = String::new();
    stream.read_line(&mut reply).await?;
    Ok((reply.trim_end().to_owned(), stream))
}

#[actix::main]
async fn main() -> std::io::Result<()> {
    env_logger::init();
    {
        // Take a port, so the factory's first bind fails with EADDRINUSE.
        let squatter = std::net::TcpListener::bind("127.0.0.1:0")?;
        let addr = squatter.local_addr()?;
        let root = Root {
            addr,
            factory: None,
            connections: HashMap::new(),
            next: 0,
        }
        .start();

        // Give the port back; the supervisor's next attempt binds it.
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(squatter);
        println!("port {} freed", addr.port());

        let mut reply = None;
        for _ in 0..100 {
            if let Ok(answer) = ask(addr, "hello, tree").await {
                reply = Some(answer);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let Some((reply, mut open)) = reply else {
            eprintln!("the supervised factory never came back");
            return Ok(());
        };
        println!("client got {reply:?} from the restarted server");

        root.send(Shutdown).await.ok();
        let mut rest = String::new();
        let closed = tokio::time::timeout(Duration::from_secs(5), open.read_line(&mut rest)).await;
        println!(
            "after stopping the root, the open connection {}",
            match closed {
                Ok(Ok(0)) => "was closed by the server",
                _ => "did not close in time",
            }
        );
        let free = std::net::TcpListener::bind(addr).is_ok();
        println!("listening port free again: {free}");
    }
    Ok(())
}

//! An actix-web application served through the factory: the real client address behind
//! HAProxy, several worker Arbiters, and upgrades that refuse no request.
//!
//! ```text
//! cargo run --example actix_web --features actix-web,proxy-protocol   # 127.0.0.1:8080
//! curl http://127.0.0.1:8080/                 # hello 127.0.0.1:50312 from pid 4242
//! kill -HUP $(pgrep -n actix_web)             # a new process takes over; this one drains
//! kill -TERM $(pgrep -n actix_web)            # drains and exits 0
//! ```
//!
//! Options: `[ADDRESS]` (an endpoint: `127.0.0.1:8080`, `unix:/tmp/web.sock`), `--proxy` (every
//! connection starts with a PROXY header, v1 or v2: behind HAProxy's `send-proxy`),
//! `--workers N`.
//!
//! The user's part is the five lines in `main` from `WebServer::new` to `run_until_signal`.

use actix_socket_factory::web::{Ended, WebServer};
use actix_socket_factory::{ProxyHeader, ProxyProtocol, SocketFactory};
use actix_web::{web, App, HttpRequest};

/// `hello <client> from pid <pid>`: the client is the one HAProxy names, not HAProxy.
async fn hello(request: HttpRequest) -> String {
    let client = request
        .peer_addr()
        .map_or_else(|| "a local client".to_owned(), |addr| addr.to_string());
    let via = match request.conn_data::<ProxyHeader>() {
        Some(header) => format!(" via {:?}", header.balancer()),
        None => String::new(),
    };
    format!("hello {client}{via} from pid {}\n", std::process::id())
}

#[actix::main]
async fn main() -> std::io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut address = "127.0.0.1:8080".to_owned();
    let mut proxy = false;
    let mut workers = 2;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--proxy" => proxy = true,
            "--workers" => workers = args.next().and_then(|n| n.parse().ok()).unwrap_or(2),
            _ => address = arg,
        }
    }
    let mut listen = SocketFactory::builder().bind(address.as_str());
    if proxy {
        listen = listen.proxy_protocol(ProxyProtocol::required());
    }

    let server = WebServer::new(|| App::new().route("/", web::get().to(hello)))
        .listen(listen)
        .workers(workers)
        .start()
        .await?;
    println!(
        "pid {}: serving on {}",
        std::process::id(),
        server.local_addr()
    );
    match server.run_until_signal().await? {
        Ended::HandedOver(pid, drained) => {
            println!(
                "pid {}: handed over to {pid}, {} left",
                std::process::id(),
                drained.left
            )
        }
        Ended::Stopped(signal, drained) => {
            println!(
                "pid {}: {signal}, {} left",
                std::process::id(),
                drained.left
            )
        }
        _ => {}
    }
    Ok(())
}

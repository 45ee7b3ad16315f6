//! Nothing leaks: a thousand accept cycles and factory shutdowns leave the descriptor count
//! where it was. Alone in its test binary so no other test opens descriptors meanwhile.

mod util;

use std::time::Duration;

use actix_socket_factory::testing::start_and_locate;
use actix_socket_factory::StopFactory;
use util::*;

#[actix::test]
async fn thousand_cycles_leave_no_descriptor_behind() {
    const CYCLES: usize = 1000;
    // Warm up once: the runtime's own descriptors (epoll, eventfd, blocking pool) open lazily.
    cycle(0).await;
    let before = open_fds();
    for round in 1..=CYCLES {
        cycle(round).await;
    }
    assert!(
        wait_until(LIMIT, || open_fds() <= before).await,
        "descriptors leaked: {before} before, {} after",
        open_fds()
    );
}

/// One server, two clients: one delivered and dropped, one left undelivered in the queue; then
/// the factory ends, by StopFactory or by its owner going away.
async fn cycle(round: usize) {
    let mut events = Events::start();
    let builder = events
        .builder()
        .bind_address("127.0.0.1")
        .owner_check_interval(Some(Duration::from_millis(1)));
    let (server, addr) = start_and_locate(builder).await.expect("server");
    let first = std::net::TcpStream::connect(addr).expect("connect");
    drop(events.next_created(LIMIT).await.expect("delivered"));
    let second = std::net::TcpStream::connect(addr).expect("connect");
    if round.is_multiple_of(2) {
        server.send(StopFactory).await.expect("stop");
    } else {
        events.stop_owner();
    }
    assert!(
        wait_until(LIMIT, || !server.connected()).await,
        "round {round}: factory stopped"
    );
    drop((first, second));
}

//! A factory's counters through the [`metrics`] facade (feature `metrics`): whatever recorder
//! the program installed (Prometheus, StatsD, OpenTelemetry, ...) gets them.

use std::time::Duration;

use actix::prelude::*;
use actix::WeakAddr;

use crate::actor::factory::SocketFactory;
use crate::actor::messages::GetSockName;
use crate::actor::stats::{FactoryStats, GetStats};

/// How often [`export_metrics`] reads a factory's counters, unless told otherwise.
pub const DEFAULT_METRICS_INTERVAL: Duration = Duration::from_secs(1);

/// Publishes `factory`'s counters through the `metrics` facade every `interval` (at least
/// 10 ms), from the current Arbiter, until the factory stops; returns the exporter, which can be
/// stopped on its own with [`StopExporter`].
///
/// Every metric has the label `endpoint`: where the factory listens or is bound (what it answers
/// to [`GetSockName`]), e.g. `127.0.0.1:8080` or `/run/app.sock`.
///
/// | metric | kind | what |
/// | --- | --- | --- |
/// | `socket_factory_accepted_total` | counter | sockets accepted (servers) or made |
/// | `socket_factory_delivered_total` | counter | `SocketCreated` sent to the owner |
/// | `socket_factory_failed_total` | counter, label `operation` (`accept`, `bind`, ...) | `SocketFailed` events |
/// | `socket_factory_backoff_episodes_total` | counter | resource-exhaustion (EMFILE, ...) episodes |
/// | `socket_factory_in_flight` | gauge | deliveries the owner holds and has not dropped yet |
/// | `socket_factory_in_backoff` | gauge | 1 during a back-off episode, else 0 |
/// | `socket_factory_accepting` | gauge | 1 while the accept loop runs, else 0 |
/// | `socket_factory_proxy_total` | counter, label `outcome` (`header`, `direct`, `dropped`, `malformed`, `timed_out`, `refused`) | PROXY protocol handling (feature `proxy-protocol`) |
///
/// The counters are the factory's own (those of [`GetStats`]), published as absolute values:
/// a restart of the exporter publishes the same totals again, never twice as much.
///
/// ```
/// use actix_socket_factory::{export_metrics, testing::Events, GetSockName};
/// use std::time::Duration;
///
/// #[actix::main]
/// async fn main() {
///     // metrics_exporter_prometheus::PrometheusBuilder::new().install()?; or any recorder
///     let events = Events::start();
///     let server = events.builder().bind("127.0.0.1:0").start();
///     let _exporter = export_metrics(&server, Duration::from_secs(1));
///     server.send(GetSockName).await.unwrap().unwrap();
/// }
/// ```
pub fn export_metrics(factory: &Addr<SocketFactory>, interval: Duration) -> Addr<MetricsExporter> {
    let exporter = MetricsExporter {
        factory: factory.downgrade(),
        interval: interval.max(Duration::from_millis(10)),
        endpoint: None,
    };
    exporter.start()
}

/// The actor [`export_metrics`] starts: reads the factory's counters and publishes them.
#[derive(Debug)]
pub struct MetricsExporter {
    factory: WeakAddr<SocketFactory>,
    interval: Duration,
    endpoint: Option<String>,
}

/// Stops a [`MetricsExporter`]; the factory goes on.
#[derive(Debug, Clone, Copy, Default, Message)]
#[rtype(result = "()")]
pub struct StopExporter;

impl Actor for MetricsExporter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.publish(ctx);
        ctx.run_interval(self.interval, |exporter, ctx| exporter.publish(ctx));
    }
}

impl Handler<StopExporter> for MetricsExporter {
    type Result = ();

    fn handle(&mut self, _: StopExporter, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl MetricsExporter {
    /// One reading: the endpoint (once known), then the counters.
    fn publish(&mut self, ctx: &mut Context<Self>) {
        let Some(factory) = self.factory.upgrade() else {
            ctx.stop();
            return;
        };
        let endpoint = self.endpoint.clone();
        let reading = async move {
            let endpoint: Option<String> = match endpoint {
                Some(endpoint) => Some(endpoint),
                None => match factory.send(GetSockName).await {
                    Ok(Ok(local)) => Some(local.to_string()),
                    // Not bound yet (names still looked up): nothing to label with yet.
                    Ok(Err(_)) => None,
                    Err(_) => return Err(()),
                },
            };
            let stats = factory.send(GetStats).await.map_err(drop)?;
            Ok::<_, ()>((endpoint, stats))
        };
        ctx.wait(
            reading
                .into_actor(self)
                .map(|reading, exporter, ctx| match reading {
                    Ok((Some(endpoint), stats)) => {
                        record(&endpoint, &stats);
                        exporter.endpoint = Some(endpoint);
                    }
                    Ok((None, _)) => {}
                    // The factory stopped.
                    Err(()) => ctx.stop(),
                }),
        );
    }
}

fn record(endpoint: &str, stats: &FactoryStats) {
    let counter = |name: &'static str, value: u64| {
        metrics::counter!(name, "endpoint" => endpoint.to_owned()).absolute(value);
    };
    let gauge = |name: &'static str, value: f64| {
        metrics::gauge!(name, "endpoint" => endpoint.to_owned()).set(value);
    };
    counter("socket_factory_accepted_total", stats.accepted);
    counter("socket_factory_delivered_total", stats.delivered);
    counter(
        "socket_factory_backoff_episodes_total",
        stats.backoff_episodes,
    );
    for (operation, count) in &stats.failed_by_operation {
        metrics::counter!(
            "socket_factory_failed_total",
            "endpoint" => endpoint.to_owned(),
            "operation" => operation.as_str()
        )
        .absolute(*count);
    }
    gauge("socket_factory_in_flight", stats.outstanding as f64);
    gauge(
        "socket_factory_in_backoff",
        f64::from(u8::from(stats.in_backoff)),
    );
    gauge(
        "socket_factory_accepting",
        f64::from(u8::from(stats.accepting)),
    );
    #[cfg(feature = "proxy-protocol")]
    {
        let proxy = &stats.proxy;
        for (outcome, count) in [
            ("header", proxy.headers),
            ("direct", proxy.direct),
            ("dropped", proxy.dropped),
            ("malformed", proxy.malformed),
            ("timed_out", proxy.timed_out),
            ("refused", proxy.refused),
        ] {
            metrics::counter!(
                "socket_factory_proxy_total",
                "endpoint" => endpoint.to_owned(),
                "outcome" => outcome
            )
            .absolute(count);
        }
    }
}

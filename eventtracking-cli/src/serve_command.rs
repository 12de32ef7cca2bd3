//! `eventtracking serve --config FILE`: the HTTP collector (crate
//! `eventtracking-collector`) in front of the config's backends, until
//! SIGINT/SIGTERM; then the tracker is shut down and its report printed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use eventtracking::signal::ShutdownSignals;
use eventtracking_collector::{Collector, CollectorConfig};

use crate::chain;

#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// The TOML config: a [collector] table and the backends (default:
    /// $EVENTTRACKING_CONFIG).
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Listen here instead of the config's `listen` (port 0: any free port;
    /// the address is printed on stderr).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// How long the shutdown waits for the backends, in seconds; what is
    /// still undelivered then goes to the dead-letter file.
    #[arg(long, default_value_t = 30, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(0..=365 * 86_400))]
    timeout: u64,
}

/// Serves until the first SIGINT/SIGTERM (a second one cuts the delivery
/// wait short); exit code 0 when nothing accepted was dropped or failed.
pub(crate) fn run(args: ServeArgs) -> Result<ExitCode, String> {
    let config = eventtracking::load_config(args.config.as_deref()).map_err(|e| chain(&e))?;
    let mut settings = CollectorConfig::from_table(config.collector()).map_err(|e| chain(&e))?;
    if let Some(listen) = args.listen {
        settings.listen = listen;
        settings.check().map_err(|e| chain(&e))?;
    }
    let tracker = config.build().map_err(|e| chain(&e))?;
    let collector = match Collector::new(tracker.clone(), settings.clone()) {
        Ok(collector) => collector,
        Err(error) => {
            let _ = tracker.shutdown(Duration::from_secs(args.timeout));
            return Err(chain(&error));
        }
    };
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let _signals = ShutdownSignals::install_with(&tracker, move |signal| {
        let _ = stop.send(signal);
    })
    .map_err(|e| format!("cannot handle signals: {e}"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("eventtracking-serve")
        .build()
        .map_err(|e| format!("cannot start the server runtime: {e}"))?;
    let backends = tracker.backend_names().join(",");
    let served = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", settings.listen))?;
        let address = listener
            .local_addr()
            .map_err(|e| format!("cannot read the listening address: {e}"))?;
        eprintln!("eventtracking serve: listening on http://{address} -> backends {backends}");
        collector
            .serve(listener, async move {
                if let Ok(signal) = stopped.await {
                    eprintln!(
                        "eventtracking serve: {signal}: stopping (finishing requests in progress, then delivering; again to stop waiting)"
                    );
                }
            })
            .await
            .map_err(|e| format!("serving on {address}: {e}"))
    });
    drop(runtime);
    let report = tracker.shutdown(Duration::from_secs(args.timeout));
    if let Some(report) = &report {
        eprint!("{report}");
    }
    served?;
    Ok(match report {
        Some(report) if report.complete && report.total_dropped() + report.total_failed() == 0 => {
            ExitCode::SUCCESS
        }
        _ => ExitCode::from(1),
    })
}

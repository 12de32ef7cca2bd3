//! An axum application tracked with eventtracking.
//!
//! ```sh
//! cargo run -p eventtracking-tower --example axum_app
//! curl -H 'X-User-Id: u-1' http://127.0.0.1:3000/courses/42
//! ```
//!
//! - `EVENTTRACKING_ADDR`: the listen address (default `127.0.0.1:3000`).
//! - `EVENTTRACKING_CONFIG`: the pipeline's config file (default: JSON lines
//!   on stdout).
//!
//! `GET /courses/{id}` emits `course.view` twice (`"phase": "start"`, then
//! `"end"` after a random 0–20 ms wait), in a context with the request's
//! method, path, client address, request id and `user_id` (the `X-User-Id`
//! header). SIGINT or SIGTERM: stop accepting, finish the requests in
//! flight, deliver the queued events, exit. Logs go to stderr.

mod app;

use std::process::ExitCode;
use std::time::Duration;

use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    let addr = match app::listen_addr(std::env::var("EVENTTRACKING_ADDR").ok().as_deref()) {
        Ok(addr) => addr,
        Err(error) => return fail(&error),
    };
    let tracker = match eventtracking::load_config(None).and_then(|config| config.build()) {
        Ok(tracker) => tracker,
        Err(error) => return fail(&error.to_string()),
    };
    let listener = match TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(error) => return fail(&format!("cannot listen on {addr}: {error}")),
    };
    let local = listener.local_addr().map_or(addr, |a| a);
    eprintln!("axum_app: listening on http://{local}");

    let router = app::router(tracker.clone(), app::tracking_layer());
    let served = app::serve(listener, router, shutdown_signal()).await;

    // Deliver what is queued; the delivery engine blocks, so off the async workers.
    let report = tokio::task::spawn_blocking(move || tracker.shutdown(Duration::from_secs(5)))
        .await
        .ok()
        .flatten();
    if let Some(report) = &report {
        eprintln!("axum_app: {report}");
    }
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&format!("server error: {error}")),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("axum_app: {message}");
    ExitCode::from(2)
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    eprintln!("axum_app: shutting down");
}

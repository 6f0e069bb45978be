//! The commands of the binary, one file per verb (or family of verbs), each a
//! function taking its parsed arguments; `main.rs` is clap and dispatch
//! (ARCHITECTURE.md, "Entry points").

pub mod args;
pub mod audit;
pub mod auth;
pub mod data;
pub mod demo;
pub mod health;
pub mod serve;
pub mod split;
pub mod stats;

/// For the commands that read a possibly damaged log: sled panics on some damage, and
/// the damage is reported as an error naming the directory instead of a panic message
/// and backtrace.
pub fn quiet_panics() {
    std::panic::set_hook(Box::new(|_| {}));
}

/// What an unexpected panic prints: one line an operator can act on (the place and
/// the message), not Rust's panic text. Damage sled panics on is caught where the log
/// is opened and reported as an error naming the directory.
pub fn operator_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        let place = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("kpr: internal error at {place}: {message}");
    }));
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

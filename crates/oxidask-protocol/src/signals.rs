//! Termination signals for the long-running processes (scheduler, worker): the first SIGTERM
//! or SIGINT starts a clean shutdown, a second one exits at once.

/// On a thread of its own, waits for SIGTERM or SIGINT, then runs `first` (on another thread,
/// so a second signal is still heard while it works) and exits the process with code 1 on the
/// next signal. `who` names the process in the message printed if the thread cannot start.
/// Does nothing where Unix signals do not exist.
pub fn on_termination(who: &'static str, first: impl FnOnce() + Send + 'static) {
    #[cfg(unix)]
    {
        let spawned = std::thread::Builder::new()
            .name(format!("{who}-signals"))
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async move {
                    use tokio::signal::unix::{signal, SignalKind};
                    let (Ok(mut term), Ok(mut int)) = (
                        signal(SignalKind::terminate()),
                        signal(SignalKind::interrupt()),
                    ) else {
                        return;
                    };
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                    std::thread::spawn(first);
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                    std::process::exit(1);
                });
            });
        if let Err(e) = spawned {
            eprintln!("{who}: signals will stop the process abruptly ({e})");
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (who, first);
    }
}

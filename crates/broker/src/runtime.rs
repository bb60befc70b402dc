//! The endpoint's own tokio runtime: one dedicated thread (the default) or a pool of workers.
//!
//! With one thread, a current-thread runtime runs on a thread of its own: the same thread
//! polls the sockets and runs the core, so a message goes from socket to subscriber without
//! changing threads, and the runtime's spinner (see `spin`) can poll the sockets itself. With
//! several, tokio's work-stealing pool; only one of its workers polls the sockets at a time.

use std::thread::{JoinHandle, ThreadId};

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

/// A running runtime; [`Runtime::stop`] ends it and every task on it.
pub(crate) enum Runtime {
    /// A pool of worker threads.
    Pool(tokio::runtime::Runtime),
    /// A current-thread runtime driven by its own thread until told to stop.
    Thread {
        stop: oneshot::Sender<()>,
        thread: JoinHandle<()>,
    },
}

impl Runtime {
    /// Starts a runtime with `threads` threads (at least one), returning it and its handle.
    pub(crate) fn start(threads: usize) -> std::io::Result<(Runtime, Handle)> {
        if threads > 1 {
            let rt = Builder::new_multi_thread()
                .worker_threads(threads)
                .thread_name("broker")
                .enable_all()
                .build()?;
            let handle = rt.handle().clone();
            return Ok((Runtime::Pool(rt), handle));
        }
        let rt = Builder::new_current_thread().enable_all().build()?;
        let handle = rt.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("broker".to_owned())
            .spawn(move || {
                // Ends when told to stop or when the endpoint is gone (the sender dropped).
                let _ = rt.block_on(stopped);
                // Ending the runtime drops every task: sockets and listeners close here.
                rt.shutdown_timeout(std::time::Duration::from_secs(1));
            })?;
        Ok((Runtime::Thread { stop, thread }, handle))
    }

    /// The thread that drives a current-thread runtime.
    fn thread_id(&self) -> Option<ThreadId> {
        match self {
            Runtime::Pool(_) => None,
            Runtime::Thread { thread, .. } => Some(thread.thread().id()),
        }
    }

    /// Ends the runtime and its tasks. Waits until they are gone (their sockets closed) unless
    /// called from the runtime's own thread, which cannot wait for itself.
    pub(crate) fn stop(self) {
        let own_thread = self.thread_id() == Some(std::thread::current().id());
        match self {
            Runtime::Pool(rt) => rt.shutdown_background(),
            Runtime::Thread { stop, thread } => {
                let _ = stop.send(());
                if !own_thread {
                    let _ = thread.join();
                }
            }
        }
    }
}

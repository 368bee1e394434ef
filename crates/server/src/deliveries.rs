//! The deliveries runtime: connections that wait on change streams (and awaitData
//! cursors) are served by worker threads of their own, at a lower CPU priority.
//!
//! Why: one write can wake thousands of waiting streams, and each then answers its
//! `getMore` and reads the next one. On one runtime those deliveries queue ahead of
//! everything else, so a writer's next insert waits behind the previous insert's
//! fan-out: every event is delivered alone and the writer crawls. With deliveries on
//! threads the kernel schedules after the ordinary connections (nice +5), writes and
//! queries keep their pace under fan-out, and a stream that falls behind simply
//! returns several events in its next batch; batching is what lets fan-out keep up
//! (`eddy bench fanout`). When the server has nothing else to do, deliveries use every
//! core.
//!
//! A connection moves here, between two requests, once it opened or read a cursor that
//! awaits data; it stays here afterwards.
//!
//! The same threads run the hand-offs of woken change streams (each stream's read and,
//! where its connection allows, the reply written straight to its socket: see
//! `crate::answer`), in parts as the dispatcher finds them, before the connections'
//! own tasks.

use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};

use eddy_engine::changes::dispatch::Handed;
use tokio::runtime::{Handle, Runtime};
use tokio::task::JoinSet;

/// How many tasks a deliveries thread runs between looks at its sockets. An event wakes
/// its streams all at once: their replies are the latency that counts, and the
/// `getMore`s that come back meanwhile only prepare the next event, so the replies go
/// first (tokio's default looks every 61 tasks).
const EVENT_INTERVAL: u32 = 1024;

/// How much lower than the ordinary connections' the deliveries threads' priority is.
const NICE: i32 = 5;

/// The deliveries runtime (started with the first connection that needs it) and the
/// connections it serves.
#[derive(Default)]
pub struct Deliveries {
    /// `Some(None)`: it could not be started; connections then stay where they are. A
    /// runtime may not be dropped where blocking is forbidden, so it is always shut down
    /// in the background.
    runtime: OnceLock<Option<Runtime>>,
    connections: Mutex<JoinSet<()>>,
    parts: Mutex<Parts>,
}

/// The parts of hand-offs running now, with the fan-outs still handing parts out, and
/// the wake-ups they held back (see [`after_replies`]).
#[derive(Default)]
struct Parts {
    running: usize,
    held: Vec<Wake>,
}

type Wake = Box<dyn FnOnce() + Send>;

thread_local! {
    /// The wake-ups held back by the part running on this thread.
    static IN_PART: std::cell::RefCell<Option<Vec<Wake>>> = const { std::cell::RefCell::new(None) };
}

/// Runs `wake` (the wake-up of a `getMore` whose reply a hand-off has written) once
/// no part of hand-offs runs any more and no fan-out is handing parts out, when called
/// from a part; at once otherwise. The woken `getMore`s' bookkeeping, and the next
/// requests they read, would otherwise run between the parts on the same threads and
/// hold back the replies still to write (also when a thread runs out of parts before
/// the dispatcher has found the next one).
pub fn after_replies(wake: impl FnOnce() + Send + 'static) {
    let mut wake = Some(Box::new(wake) as Wake);
    IN_PART.with(|part| {
        if let Some(held) = part.borrow_mut().as_mut() {
            held.extend(wake.take());
        }
    });
    if let Some(wake) = wake {
        wake();
    }
}

/// Ends a part (also when a hand-off panicked): its held wake-ups join the others,
/// and the last part or fan-out to end releases them all.
struct PartEnd(Arc<Deliveries>);

impl Drop for PartEnd {
    fn drop(&mut self) {
        let mine = IN_PART
            .with(|part| part.borrow_mut().take())
            .unwrap_or_default();
        self.0.ended(mine);
    }
}

/// A fan-out on the deliveries threads: counted as running until the hub has given it
/// every part.
struct FanOut(Arc<Deliveries>);

impl eddy_engine::hub::FanOut for FanOut {
    fn run(&mut self, part: Handed) {
        self.0.run_part(part);
    }
}

impl Drop for FanOut {
    fn drop(&mut self) {
        self.0.ended(Vec::new());
    }
}

impl std::fmt::Debug for Deliveries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliveries").finish_non_exhaustive()
    }
}

impl Deliveries {
    /// The runtime, started on first use with one worker thread per core.
    fn handle(&self) -> Option<&Handle> {
        let runtime = self.runtime.get_or_init(|| {
            let threads = std::thread::available_parallelism().map_or(2, usize::from);
            let started = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .thread_name("eddy-deliveries")
                .event_interval(EVENT_INTERVAL)
                .on_thread_start(lower_priority)
                .enable_all()
                .build();
            match started {
                Ok(runtime) => Some(runtime),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start the deliveries threads; change streams are served with everything else");
                    None
                }
            }
        });
        runtime.as_ref().map(Runtime::handle)
    }

    /// Runs a connection's remaining life here; gives it back if the runtime could not
    /// be started.
    pub fn spawn<F>(&self, connection: F) -> Result<(), F>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let Some(handle) = self.handle() else {
            return Err(connection);
        };
        let mut set = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        // Finished connections are collected here so the set stays small.
        while set.try_join_next().is_some() {}
        set.spawn_on(connection, handle);
        Ok(())
    }

    /// Begins the fan-out of one wake (the hub's runner).
    pub fn fan_out(self: &Arc<Self>) -> Box<dyn eddy_engine::hub::FanOut> {
        self.started();
        Box::new(FanOut(Arc::clone(self)))
    }

    fn started(&self) {
        self.parts.lock().unwrap_or_else(|p| p.into_inner()).running += 1;
    }

    /// A part or a fan-out ended, with the wake-ups it held back: the last one to end
    /// releases them all.
    fn ended(&self, held: Vec<Wake>) {
        let released = {
            let mut parts = self.parts.lock().unwrap_or_else(|p| p.into_inner());
            parts.running = parts.running.saturating_sub(1);
            parts.held.extend(held);
            if parts.running == 0 {
                std::mem::take(&mut parts.held)
            } else {
                Vec::new()
            }
        };
        released.into_iter().for_each(|wake| wake());
    }

    /// Runs a part of the hand-offs one write woke as a task of its own (the runtime's
    /// threads take the parts in turn); on the calling thread if the runtime could not
    /// be started.
    fn run_part(self: &Arc<Self>, handed: Handed) {
        self.started();
        let end = PartEnd(Arc::clone(self));
        let part = move || {
            IN_PART.with(|part| *part.borrow_mut() = Some(Vec::new()));
            let _end = end;
            for (handoff, through) in handed {
                handoff.run(through);
            }
        };
        match self.handle() {
            Some(handle) => drop(handle.spawn(async move { part() })),
            None => part(),
        }
    }

    /// Ends every connection served here (server shutdown).
    pub async fn end_connections(&self) {
        let mut set =
            std::mem::take(&mut *self.connections.lock().unwrap_or_else(|p| p.into_inner()));
        set.abort_all();
        while set.join_next().await.is_some() {}
    }
}

impl Drop for Deliveries {
    fn drop(&mut self) {
        if let Some(Some(runtime)) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Lowers the calling thread's scheduling priority (best effort: raising the nice value
/// needs no privilege on Linux, and elsewhere it is only a preference).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        let tid = rustix::thread::gettid();
        let now = rustix::process::getpriority_process(Some(tid)).unwrap_or(0);
        if let Err(e) = rustix::process::setpriority_process(Some(tid), now + NICE) {
            tracing::debug!(error = %e, "cannot lower the deliveries thread's priority");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    use eddy_engine::changes::dispatch::Handoff;

    use super::*;

    /// A hand-off that holds a wake-up back, as a delivery that wrote its reply does,
    /// and says when it ran.
    struct Holds {
        woken: Arc<AtomicBool>,
        ran: mpsc::Sender<()>,
    }

    impl Handoff for Holds {
        fn run(self: Box<Self>, _through: u64) {
            let woken = Arc::clone(&self.woken);
            after_replies(move || woken.store(true, Ordering::SeqCst));
            let _ = self.ran.send(());
        }

        fn cancel(self: Box<Self>, _through: u64) {}
    }

    #[test]
    fn wake_ups_are_held_until_the_fan_out_has_handed_every_part() {
        let deliveries = Arc::new(Deliveries::default());
        let woken = Arc::new(AtomicBool::new(false));
        let (ran, part_ran) = mpsc::channel();
        let mut fan_out = deliveries.fan_out();
        fan_out.run(vec![(
            Box::new(Holds {
                woken: Arc::clone(&woken),
                ran,
            }) as Box<dyn Handoff>,
            0,
        )]);
        part_ran
            .recv_timeout(Duration::from_secs(10))
            .expect("the part ran");
        // The only part has run (or is ending); the dispatcher may still find streams.
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            !woken.load(Ordering::SeqCst),
            "released before the fan-out ended"
        );
        drop(fan_out);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !woken.load(Ordering::SeqCst) {
            assert!(Instant::now() < deadline, "never released");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

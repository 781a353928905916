//! Waking many connections of another thread at once: one hand-off per worker thread per
//! broadcast, instead of one per subscriber.
//!
//! A broadcast runs on its app's arbiter thread; the connections it queues frames for are
//! polled by the HTTP worker threads. Waking a connection's task from another thread is not a
//! plain function call: the runtime puts the task on that thread's remote queue (a lock) and, if
//! the thread sleeps, writes to its eventfd (a system call). Done per subscriber, a fan-out to
//! 10,000 sockets paid that 10,000 times per event, and the workers took their remote-queue
//! lock as often.
//!
//! So each worker thread has a [`Hub`]: a list of wakers to call and one task of its own that
//! calls them. A broadcast gathers the wakers of the connections it made ready in [`Wakes`],
//! grouped by hub, and hands each hub its whole group under one lock; only the hand-off that
//! finds the hub's task idle wakes it, which is the one cross-thread wake-up. The hub's task
//! then wakes its connections locally, which is cheap (a push onto the thread's own run queue).
//!
//! Nothing waits longer than before: the frames are already queued when the wakers are handed
//! over, at the end of the broadcast (or when [`Wakes`] is dropped), and a hub whose worker has
//! stopped wakes its wakers directly. Bounded: a connection's waker is taken from its outbox
//! when the outbox hands it over, and put back only when the connection is polled again, so a
//! hub holds at most one waker per connection of its thread.

use std::cell::RefCell;
use std::future::poll_fn;
use std::mem;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Poll, Waker};

/// One worker thread's hand-off point for wake-ups.
pub struct Hub {
    state: Mutex<HubState>,
}

#[derive(Default)]
struct HubState {
    /// Wakers handed over and not yet called.
    pending: Vec<Waker>,
    /// The hub task's waker, present while it waits.
    task: Option<Waker>,
    /// The hub's task has ended (its runtime stopped): hand-offs wake directly.
    closed: bool,
}

thread_local! {
    static LOCAL: RefCell<Option<Arc<Hub>>> = const { RefCell::new(None) };
    /// The broadcasting thread's batch, reused so that its vectors keep their allocations.
    static GATHERED: RefCell<Wakes> = RefCell::default();
}

/// Runs `f` (a broadcast) with this thread's [`Wakes`], then hands what it gathered to the hubs.
/// `f` must not call `gather` itself.
pub fn gather<R>(f: impl FnOnce(&mut Wakes) -> R) -> R {
    GATHERED.with(|cell| {
        let mut wakes = cell.borrow_mut();
        let result = f(&mut wakes);
        wakes.flush();
        result
    })
}

impl Hub {
    /// The current thread's hub, its task spawned on first use. Call it from inside the thread's
    /// (local) runtime, as the WebSocket handler does.
    pub fn local() -> Arc<Hub> {
        LOCAL.with(|cell| {
            let mut local = cell.borrow_mut();
            if let Some(hub) = local.as_ref().filter(|hub| !hub.lock().closed) {
                return hub.clone();
            }
            let hub = Arc::new(Hub {
                state: Mutex::new(HubState::default()),
            });
            actix_web::rt::spawn(run(hub.clone()));
            *local = Some(hub.clone());
            hub
        })
    }

    fn lock(&self) -> MutexGuard<'_, HubState> {
        // Nothing panics while holding the lock; the list is valid whatever happened.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes `wakers` (leaving it empty) for the hub's task to call.
    fn hand_over(&self, wakers: &mut Vec<Waker>) {
        let task = {
            let mut state = self.lock();
            if state.closed {
                drop(state);
                wakers.drain(..).for_each(Waker::wake);
                return;
            }
            if state.pending.is_empty() {
                // Swapped, not copied: the two vectors' allocations are reused in turn.
                mem::swap(&mut state.pending, wakers);
            } else {
                state.pending.append(wakers);
            }
            state.task.take()
        };
        if let Some(task) = task {
            task.wake();
        }
    }
}

/// The hub's task: calls the wakers handed over, on its own thread, until its runtime stops.
async fn run(hub: Arc<Hub>) {
    /// Marks the hub closed when the task is dropped (its runtime stopped).
    struct Closed(Arc<Hub>);
    impl Drop for Closed {
        fn drop(&mut self) {
            let mut state = self.0.lock();
            state.closed = true;
            // Their tasks were on this runtime too; nothing is left to wake.
            state.pending = Vec::new();
            state.task = None;
        }
    }
    let closed = Closed(hub);
    let mut woken = Vec::new();
    poll_fn(|cx| {
        {
            let mut state = closed.0.lock();
            // Registered under the same lock as the list is taken: no hand-off is missed.
            if !state.task.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                state.task = Some(cx.waker().clone());
            }
            mem::swap(&mut state.pending, &mut woken);
        }
        woken.drain(..).for_each(Waker::wake);
        Poll::<()>::Pending
    })
    .await;
}

/// Wake-ups gathered during one broadcast, grouped by hub; handed over by [`Wakes::flush`] or
/// when dropped. Broadcasts use their thread's, through [`gather`].
#[derive(Default)]
pub struct Wakes {
    hubs: Vec<(Arc<Hub>, Vec<Waker>)>,
}

impl Wakes {
    /// Adds a connection's waker, to be called on `hub`'s thread.
    pub fn add(&mut self, hub: &Arc<Hub>, waker: Waker) {
        // There are as many hubs as worker threads: a short list.
        match self.hubs.iter_mut().find(|(h, _)| Arc::ptr_eq(h, hub)) {
            Some((_, wakers)) => wakers.push(waker),
            None => self.hubs.push((hub.clone(), vec![waker])),
        }
    }

    /// Hands every gathered waker to its hub.
    pub fn flush(&mut self) {
        for (hub, wakers) in &mut self.hubs {
            if !wakers.is_empty() {
                hub.hand_over(wakers);
            }
        }
    }
}

impl Drop for Wakes {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    /// Counts its wake-ups.
    #[derive(Default)]
    struct Counter(AtomicUsize);

    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[actix_web::test]
    async fn wakers_handed_over_from_another_thread_are_called_on_the_hubs_thread() {
        let hub = Hub::local();
        assert!(Arc::ptr_eq(&hub, &Hub::local()), "one hub per thread");
        actix_web::rt::task::yield_now().await;
        let counters: Vec<Arc<Counter>> = (0..100).map(|_| Arc::default()).collect();
        let wakers: Vec<Waker> = counters.iter().map(|c| Waker::from(c.clone())).collect();
        let remote = hub.clone();
        std::thread::spawn(move || {
            let mut wakes = Wakes::default();
            for waker in wakers {
                wakes.add(&remote, waker);
            }
            wakes.flush();
        })
        .join()
        .unwrap();
        // Handed over, not called: the hub's task calls them once this thread lets it run.
        assert!(counters.iter().all(|c| c.0.load(Ordering::SeqCst) == 0));
        for _ in 0..10 {
            actix_web::rt::task::yield_now().await;
        }
        assert!(counters.iter().all(|c| c.0.load(Ordering::SeqCst) == 1));
        assert!(hub.lock().pending.is_empty());
    }

    #[actix_web::test]
    async fn dropping_the_batch_hands_it_over_and_a_closed_hub_wakes_directly() {
        let hub = Hub::local();
        actix_web::rt::task::yield_now().await;
        let counter = Arc::new(Counter::default());
        {
            let mut wakes = Wakes::default();
            wakes.add(&hub, Waker::from(counter.clone()));
            assert_eq!(counter.0.load(Ordering::SeqCst), 0);
        }
        for _ in 0..10 {
            actix_web::rt::task::yield_now().await;
        }
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);

        hub.lock().closed = true;
        let mut wakes = Wakes::default();
        wakes.add(&hub, Waker::from(counter.clone()));
        wakes.flush();
        assert_eq!(counter.0.load(Ordering::SeqCst), 2, "woken at once");
        assert!(
            !Arc::ptr_eq(&hub, &Hub::local()),
            "a closed hub is replaced"
        );
    }
}

//! One task per Arbiter that runs the first turn of the factories made by `start()` whose
//! outcome is already there (a loopback client connected inside `connect(2)`, a datagram socket
//! bound): most of them are done after that turn and never get a task of their own.
//!
//! Every factory is still a whole actor: its `Addr` answers every message, its context runs
//! exactly as actix runs it (`ContextFut`, the mailbox first, then its futures), and it delivers
//! by message to its owner. Only the tokio task around the context is saved when the first
//! turn ends it: the allocation of the task (with the context inside), its entry in the
//! Arbiter's task list, its scheduling, and its teardown. A factory still running after its
//! first turn is given a task of its own there and then, which polls it at once (so every
//! waker it registered is its own from then on).
//!
//! The first turn runs at this task's next poll on the factory's Arbiter: after `start()` has
//! returned, and after any message sent to the factory right after it, as for any actor.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context as TaskContext, Poll, Waker};

use actix::dev::{channel, ContextFut};
use actix::prelude::*;

use super::SocketFactory;

/// The mailbox capacity `Context::new()` gives (actix's `DEFAULT_CAPACITY`, not exported).
const MAILBOX_CAPACITY: usize = 16;

type Running = Box<ContextFut<SocketFactory, Context<SocketFactory>>>;

/// Factories waiting for their first turn, and the task that runs them.
#[derive(Default)]
struct Queue {
    waiting: RefCell<VecDeque<Running>>,
    /// The runner's waker, once it has been polled.
    runner: RefCell<Option<Waker>>,
}

thread_local! {
    /// This Arbiter's queue, while its runner task lives.
    static QUEUE: RefCell<Option<Rc<Queue>>> = const { RefCell::new(None) };
}

/// Starts a factory made by `make` on this Arbiter, as `Actor::create` does; its first turn
/// runs on this Arbiter's shared runner when its outcome is already held (so that turn may
/// end it), on a task of its own otherwise.
pub(crate) fn start<F>(make: F) -> Addr<SocketFactory>
where
    F: FnOnce(&mut Context<SocketFactory>) -> SocketFactory,
{
    // The mailbox's first sender is the address returned: `Context::new()` would make one,
    // drop it, and make another for `address()` (two `Arc`s made and freed for nothing).
    let (sender, receiver) = channel::channel(MAILBOX_CAPACITY);
    let mut ctx = Context::with_receiver(receiver);
    let factory = make(&mut ctx);
    let short = factory.may_end_in_first_turn();
    let running = ctx.into_future(factory);
    let addr = Addr::new(sender);
    if short {
        if let Some(queue) = queue() {
            queue.waiting.borrow_mut().push_back(Box::new(running));
            if let Some(runner) = &*queue.runner.borrow() {
                runner.wake_by_ref();
            }
            return addr;
        }
    }
    actix::spawn(running);
    addr
}

/// This Arbiter's queue, its runner spawned on first use; `None` outside a runtime.
fn queue() -> Option<Rc<Queue>> {
    QUEUE
        .try_with(|queue| {
            let mut queue = queue.try_borrow_mut().ok()?;
            if let Some(queue) = &*queue {
                return Some(Rc::clone(queue));
            }
            tokio::runtime::Handle::try_current().ok()?;
            let made = Rc::new(Queue::default());
            *queue = Some(Rc::clone(&made));
            actix::spawn(Runner(Rc::clone(&made)));
            Some(made)
        })
        .ok()
        .flatten()
}

/// Runs each queued factory's first turn; never ends while its runtime lives (idle, it holds
/// an empty queue and is never woken).
struct Runner(Rc<Queue>);

impl Future for Runner {
    type Output = ();

    fn poll(self: Pin<&mut Self>, task: &mut TaskContext<'_>) -> Poll<()> {
        let queue = &self.0;
        {
            let mut runner = queue.runner.borrow_mut();
            match &mut *runner {
                Some(waker) => waker.clone_from(task.waker()),
                None => *runner = Some(task.waker().clone()),
            }
        }
        // No borrow held across a turn: a factory's turn may start another factory.
        loop {
            let next = queue.waiting.borrow_mut().pop_front();
            let Some(mut running) = next else {
                return Poll::Pending;
            };
            if Pin::new(&mut *running).poll(task).is_pending() {
                // Still running (its outcome waits for a recipient, say): a task of its own,
                // which polls it at once and so re-registers every waker for itself.
                actix::spawn(running);
            }
        }
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        // The runtime is going (a System stopping): a later one on this thread gets its own.
        let _ = QUEUE.try_with(|queue| {
            if let Ok(mut queue) = queue.try_borrow_mut() {
                if queue.as_ref().is_some_and(|q| Rc::ptr_eq(q, &self.0)) {
                    *queue = None;
                }
            }
        });
    }
}

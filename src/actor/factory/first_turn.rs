//! How a factory made by `start()` gets to its first turn, as cheaply as actix allows.
//!
//! Every factory is a whole actor to the outside: `start()` returns its `Addr`, which answers
//! every message until the factory stops, and the factory delivers by message to its owner. What
//! is saved is the machinery a one-shot factory does not use:
//!
//! - **The context, until it is needed.** Setup runs against a [`Turn`]: the actor's context, or,
//!   inside `start()`, a [`Deferred`] one that holds the mailbox's receiver and makes the
//!   context only when setup needs it (a look-up, a connect race, a server's accept loop). A
//!   client whose `connect(2)` is over at once (loopback), or a bound datagram socket, keeps its
//!   outcome beside the receiver and needs no context at all.
//! - **The task.** Such a factory's first turn runs on one task per Arbiter, the runner, after
//!   `start()` has returned. If no message is waiting in its mailbox and its outcome can be
//!   delivered (a recipient is set, no socket file or duplicate to keep), the runner delivers it
//!   and drops the factory with its receiver: exactly what the actor's first turn would do (an
//!   empty mailbox, the outbox, a stop), without making its context, its `ContextFut`, or a task.
//!   A message that arrived first (`SetEvents`, `StopFactory`, `GetSockName`, ...) makes the
//!   actor there and then: the context is made from the receiver, that message is handled,
//!   then the context runs (the rest of the mailbox, then the outbox) as for any actor. A
//!   factory that outlives its first turn gets a task of its own.
//!
//! The first turn runs at the runner's next poll on the factory's Arbiter: after `start()` has
//! returned, and after any message sent to the factory right after it.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll, Waker};

use actix::dev::channel::{self, AddressReceiver};
use actix::dev::{ContextFut, Envelope, EnvelopeProxy};
use actix::prelude::*;

use std::rc::Rc;

use super::{Outbox, Outcome, SocketFactory, State};

/// The mailbox capacity `Context::new()` gives (actix's `DEFAULT_CAPACITY`, not exported).
const MAILBOX_CAPACITY: usize = 16;

/// Where a factory's setup runs: in its actor's context, or before it has one.
pub(crate) trait Turn {
    /// The actor's context, made now if the factory has none yet.
    fn ctx(&mut self) -> &mut Context<SocketFactory>;
    /// Parks a one-shot outcome until the factory's next turn delivers it.
    fn hold(&mut self, factory: &mut SocketFactory, outcome: Outcome);
}

impl Turn for Context<SocketFactory> {
    fn ctx(&mut self) -> &mut Context<SocketFactory> {
        self
    }

    fn hold(&mut self, factory: &mut SocketFactory, outcome: Outcome) {
        factory.state = State::Holding(Box::new(outcome));
        self.spawn(Outbox);
    }
}

/// The setup of a factory inside `start()`: its context is made only when setup needs one.
pub(crate) struct Deferred {
    /// The mailbox's receiver, until a context is made from it.
    receiver: Option<AddressReceiver<SocketFactory>>,
    context: Option<Context<SocketFactory>>,
    /// A one-shot outcome held while there is no context.
    outcome: Option<Outcome>,
}

impl Turn for Deferred {
    fn ctx(&mut self) -> &mut Context<SocketFactory> {
        let receiver = &mut self.receiver;
        self.context.get_or_insert_with(|| match receiver.take() {
            Some(receiver) => Context::with_receiver(receiver),
            // Not reached: the receiver goes only into the context.
            None => Context::new(),
        })
    }

    fn hold(&mut self, factory: &mut SocketFactory, outcome: Outcome) {
        match &mut self.context {
            Some(ctx) => ctx.hold(factory, outcome),
            None => self.outcome = Some(outcome),
        }
    }
}

/// Starts a factory on this Arbiter, as `Actor::create` does, with `set_up` run at once
/// against a [`Deferred`] context (see the module's docs).
pub(crate) fn start<F>(set_up: F) -> Addr<SocketFactory>
where
    F: FnOnce(&mut Deferred) -> SocketFactory,
{
    // The mailbox's first sender is the address returned: `Context::new()` would make one,
    // drop it, and make another for `address()` (two `Arc`s made and freed for nothing).
    let (sender, receiver) = channel::channel(MAILBOX_CAPACITY);
    let mut deferred = Deferred {
        receiver: Some(receiver),
        context: None,
        outcome: None,
    };
    let mut factory = set_up(&mut deferred);
    let entry = match deferred {
        Deferred {
            receiver: Some(receiver),
            context: None,
            outcome: Some(outcome),
        } => Entry::Quick(Box::new(Quick {
            factory,
            receiver,
            outcome,
        })),
        Deferred {
            receiver,
            context,
            outcome,
        } => {
            let mut ctx = match (context, receiver) {
                (Some(ctx), _) => ctx,
                (None, Some(receiver)) => Context::with_receiver(receiver),
                (None, None) => Context::new(),
            };
            if let Some(outcome) = outcome {
                ctx.hold(&mut factory, outcome);
            }
            let short = factory.may_end_in_first_turn();
            let running = ctx.into_future(factory);
            if !short {
                actix::spawn(running);
                return Addr::new(sender);
            }
            Entry::Running(Box::new(running))
        }
    };
    match queue() {
        Some(queue) => queue.push(entry),
        // Outside a runtime: no runner; `actix::spawn` says so as it always does.
        None => {
            match entry {
                Entry::Quick(quick) => actix::spawn((*quick).into_actor(None)),
                Entry::Running(running) => actix::spawn(running),
            };
        }
    }
    Addr::new(sender)
}

/// A factory that has no context yet, with its outcome.
struct Quick {
    factory: SocketFactory,
    receiver: AddressReceiver<SocketFactory>,
    outcome: Outcome,
}

impl Quick {
    /// The factory's first turn: delivered here, or made into an actor.
    fn first_turn(self: Box<Self>, task: &mut TaskContext<'_>) {
        let Quick {
            mut factory,
            mut receiver,
            outcome,
        } = *self;
        let first = match Pin::new(&mut receiver).poll_next(task) {
            Poll::Ready(Some(message)) => Some(message),
            // Nothing waiting (a message sent later finds the mailbox closed, as it would
            // find the stopped actor's), or every address dropped.
            Poll::Ready(None) | Poll::Pending => None,
        };
        let outcome = match first {
            Some(_) => outcome,
            None => match factory.deliver_first(outcome) {
                // Delivered: the factory's job is done, and so is the factory.
                None => return,
                Some(kept) => kept,
            },
        };
        let quick = Quick {
            factory,
            receiver,
            outcome,
        };
        let mut running = Box::new(quick.into_actor(first));
        if Pin::new(&mut *running).poll(task).is_pending() {
            // Still running: a task of its own, which polls it at once and so re-registers
            // every waker for itself.
            actix::spawn(running);
        }
    }

    /// The whole actor: its context made from the receiver, the outcome held for the outbox,
    /// and `first`, a message already taken from the mailbox, handled before the rest.
    fn into_actor(
        self,
        first: Option<Envelope<SocketFactory>>,
    ) -> ContextFut<SocketFactory, Context<SocketFactory>> {
        let Quick {
            mut factory,
            receiver,
            outcome,
        } = self;
        let mut ctx = Context::with_receiver(receiver);
        ctx.hold(&mut factory, outcome);
        if let Some(mut message) = first {
            // Before `started()`, which does nothing for a factory already set up (see
            // `Actor::started`): the order is the actor's own, this message, then the mailbox,
            // then the outbox.
            message.handle(&mut factory, &mut ctx);
        }
        ctx.into_future(factory)
    }
}

impl SocketFactory {
    /// Delivers a first outcome without an actor, when the actor's first turn would deliver it
    /// and stop: a recipient for it, nothing to keep afterwards. Gives it back otherwise.
    fn deliver_first(&mut self, outcome: Outcome) -> Option<Outcome> {
        match outcome {
            Outcome::Created { created, file }
                if file.is_none()
                    && !self.shareable
                    && !self.gated
                    && self.owners.has_success() =>
            {
                self.counters.delivered += u64::from(self.owners.deliver(created).is_ok());
            }
            Outcome::Failed(failure) if !self.gated => self.end_failed(failure),
            outcome => return Some(outcome),
        }
        self.state = State::Retired;
        log::debug!("factory {} ({}): stopped", self.id, self.name);
        None
    }
}

/// A factory waiting for its first turn.
enum Entry {
    /// Set up without a context (see [`Quick`]). Boxed: moving it in and out of the queue
    /// inline cost more than the allocation (7,298 against 7,185 instructions per connect).
    Quick(Box<Quick>),
    /// An actor whose first turn may end it.
    Running(Box<ContextFut<SocketFactory, Context<SocketFactory>>>),
}

/// Factories waiting for their first turn, and the task that runs them.
#[derive(Default)]
struct Queue {
    waiting: RefCell<VecDeque<Entry>>,
    /// The runner's waker, once it has been polled.
    runner: RefCell<Option<Waker>>,
}

thread_local! {
    /// This Arbiter's queue, while its runner task lives.
    static QUEUE: RefCell<Option<Rc<Queue>>> = const { RefCell::new(None) };
}

impl Queue {
    /// Queues `entry` for the runner, and wakes it.
    fn push(&self, entry: Entry) {
        self.waiting.borrow_mut().push_back(entry);
        if let Some(runner) = &*self.runner.borrow() {
            runner.wake_by_ref();
        }
    }
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
            match next {
                None => return Poll::Pending,
                Some(Entry::Quick(quick)) => quick.first_turn(task),
                Some(Entry::Running(mut running)) => {
                    if Pin::new(&mut *running).poll(task).is_pending() {
                        // Still running (its outcome waits for a recipient, say): a task of
                        // its own, which polls it at once and so re-registers every waker.
                        actix::spawn(running);
                    }
                }
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

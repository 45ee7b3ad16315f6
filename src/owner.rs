//! The owner's recipients, and one owner check per Arbiter instead of a timer per factory.
//!
//! actix gives no signal when an actor's mailbox closes, so a factory learns that its owner is
//! gone only by looking: at each delivery, and for long-lived factories (servers, one-shot
//! factories still holding something) periodically. One sweeping task per Arbiter and period
//! looks at every such factory's recipients; a timer per factory would cost each idle server a
//! timer entry and a wake-up per period.

use std::cell::RefCell;
use std::rc::{Rc, Weak};
use std::time::Duration;

use actix::{Message, Recipient, WeakAddr};

use crate::factory::SocketFactory;
use crate::messages::{EventChange, SocketCreated, SocketFailed};

/// Where a factory's messages go; shared with the sweeper, which only reads it.
#[derive(Debug, Default)]
pub(crate) struct Owners {
    success: RefCell<Option<Recipient<SocketCreated>>>,
    failure: RefCell<Option<Recipient<SocketFailed>>>,
}

impl Owners {
    pub(crate) fn new(
        success: Option<Recipient<SocketCreated>>,
        failure: Option<Recipient<SocketFailed>>,
    ) -> Rc<Owners> {
        Rc::new(Owners {
            success: RefCell::new(success),
            failure: RefCell::new(failure),
        })
    }

    /// Sends to the success recipient; gives the message back when there is none, or it can no
    /// longer be reached.
    pub(crate) fn deliver(&self, created: SocketCreated) -> Result<(), SocketCreated> {
        send(&self.success, created)
    }

    /// Sends to the failure recipient; gives the message back when there is none to take it.
    pub(crate) fn report(&self, failed: SocketFailed) -> Result<(), SocketFailed> {
        send(&self.failure, failed)
    }

    /// Whether a success recipient is set (reachable or not).
    pub(crate) fn has_success(&self) -> bool {
        self.success.borrow().is_some()
    }

    /// Whether a success recipient is set and reachable: the condition to accept.
    pub(crate) fn can_deliver(&self) -> bool {
        self.success
            .borrow()
            .as_ref()
            .is_some_and(Recipient::connected)
    }

    /// The owner is gone when none of the recipients it set can be reached. With none set there
    /// is nobody to lose.
    pub(crate) fn gone(&self) -> bool {
        let success = self.success.borrow().as_ref().map(Recipient::connected);
        let failure = self.failure.borrow().as_ref().map(Recipient::connected);
        match (success, failure) {
            (None, None) => false,
            (s, f) => !s.unwrap_or(false) && !f.unwrap_or(false),
        }
    }

    pub(crate) fn change(
        &self,
        success: EventChange<SocketCreated>,
        failure: EventChange<SocketFailed>,
    ) {
        apply(&self.success, success);
        apply(&self.failure, failure);
    }
}

fn send<M>(slot: &RefCell<Option<Recipient<M>>>, message: M) -> Result<(), M>
where
    M: Message + Send,
    M::Result: Send,
{
    match slot.borrow().as_ref() {
        Some(recipient) if recipient.connected() => {
            recipient.do_send(message);
            Ok(())
        }
        _ => Err(message),
    }
}

fn apply<M>(slot: &RefCell<Option<Recipient<M>>>, change: EventChange<M>)
where
    M: Message + Send,
    M::Result: Send,
{
    match change {
        EventChange::Keep => {}
        EventChange::Set(recipient) => *slot.borrow_mut() = Some(recipient),
        EventChange::Disable => *slot.borrow_mut() = None,
    }
}

/// Tells a factory that the sweeper found its owner gone.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub(crate) struct OwnerGone;

struct Watched {
    owners: Weak<Owners>,
    factory: WeakAddr<SocketFactory>,
}

type Sweep = Rc<RefCell<Vec<Watched>>>;

thread_local! {
    /// This Arbiter's sweeps, one per period in use.
    static SWEEPS: RefCell<Vec<(Duration, Sweep)>> = const { RefCell::new(Vec::new()) };
}

/// Has this Arbiter's sweeper look at `owners` every `period`, telling `factory` when they are
/// gone. The entry goes once the factory has dropped its owners (stopped or restarted).
pub(crate) fn watch(period: Duration, owners: &Rc<Owners>, factory: WeakAddr<SocketFactory>) {
    let entry = Watched {
        owners: Rc::downgrade(owners),
        factory,
    };
    SWEEPS.with(|sweeps| {
        let mut sweeps = sweeps.borrow_mut();
        if let Some((_, sweep)) = sweeps.iter().find(|(p, _)| *p == period) {
            sweep.borrow_mut().push(entry);
            return;
        }
        let sweep: Sweep = Rc::new(RefCell::new(vec![entry]));
        sweeps.push((period, Rc::clone(&sweep)));
        actix_rt::spawn(sweeper(period, sweep));
    });
}

/// Looks at every watched factory each `period`, until none is left.
async fn sweeper(period: Duration, sweep: Sweep) {
    // However the task ends (no one left to watch, or its runtime shut down with a System
    // that stopped), the sweep leaves the registry, so a later System on this thread starts
    // a live one instead of feeding a dead one.
    let _registered = Registered(Rc::clone(&sweep));
    let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        beat.tick().await;
        sweep
            .borrow_mut()
            .retain(|watched| match watched.owners.upgrade() {
                None => false,
                Some(owners) if owners.gone() => {
                    if let Some(factory) = watched.factory.upgrade() {
                        factory.do_send(OwnerGone);
                    }
                    false
                }
                Some(_) => true,
            });
        if sweep.borrow().is_empty() {
            return;
        }
    }
}

/// Removes its sweep from this thread's registry when dropped.
struct Registered(Sweep);

impl Drop for Registered {
    fn drop(&mut self) {
        // try_with: at thread exit the registry itself may already be gone.
        let _ = SWEEPS.try_with(|sweeps| {
            if let Ok(mut sweeps) = sweeps.try_borrow_mut() {
                sweeps.retain(|(_, other)| !Rc::ptr_eq(other, &self.0));
            }
        });
    }
}

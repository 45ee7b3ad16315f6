//! The owner's recipients, and one owner check per Arbiter instead of a timer per factory.
//!
//! actix gives no signal when an actor's mailbox closes, so a factory learns that its owner is
//! gone only by looking: at each delivery, and for long-lived factories (servers, one-shot
//! factories still holding something) periodically. One sweeping task per Arbiter and period
//! looks at every such factory's recipients; a timer per factory would cost each idle server a
//! timer entry and a wake-up per period.

use std::cell::RefCell;
use std::fmt;
use std::rc::{Rc, Weak};
use std::time::Duration;

use actix::dev::ToEnvelope;
use actix::{Actor, Addr, Handler, Message, Recipient, WeakAddr};

use crate::factory::SocketFactory;
use crate::messages::{EventChange, SocketCreated, SocketFailed};

/// An actor that takes both of a factory's messages. One address serves both routes: two
/// `Recipient`s made from it would each carry their own boxed sender, and every idle factory
/// would pay for the second.
pub(crate) trait OwnerActor: Send {
    fn connected(&self) -> bool;
    fn created(&self, created: SocketCreated);
    fn failed(&self, failed: SocketFailed);
    fn clone_box(&self) -> Box<dyn OwnerActor>;
}

impl<A> OwnerActor for Addr<A>
where
    A: Actor + Handler<SocketCreated> + Handler<SocketFailed>,
    A::Context: ToEnvelope<A, SocketCreated> + ToEnvelope<A, SocketFailed>,
{
    fn connected(&self) -> bool {
        Addr::connected(self)
    }

    fn created(&self, created: SocketCreated) {
        self.do_send(created);
    }

    fn failed(&self, failed: SocketFailed) {
        self.do_send(failed);
    }

    fn clone_box(&self) -> Box<dyn OwnerActor> {
        Box::new(self.clone())
    }
}

/// A message a factory sends, and how it reaches an [`OwnerActor`].
pub(crate) trait Event: Message + Send + Sized
where
    Self::Result: Send,
{
    fn send_to(self, owner: &dyn OwnerActor);
}

impl Event for SocketCreated {
    fn send_to(self, owner: &dyn OwnerActor) {
        owner.created(self);
    }
}

impl Event for SocketFailed {
    fn send_to(self, owner: &dyn OwnerActor) {
        owner.failed(self);
    }
}

/// Where one kind of message goes.
pub(crate) enum Route<M: Message + Send>
where
    M::Result: Send,
{
    /// Nowhere (not set, or disabled).
    Off,
    /// To the owner actor.
    Owner,
    /// To this recipient.
    To(Recipient<M>),
}

impl<M: Message + Send> Clone for Route<M>
where
    M::Result: Send,
{
    fn clone(&self) -> Self {
        match self {
            Route::Off => Route::Off,
            Route::Owner => Route::Owner,
            Route::To(recipient) => Route::To(recipient.clone()),
        }
    }
}

/// Where a factory's messages go, as the builder describes it.
pub(crate) struct Routes {
    pub(crate) owner: Option<Box<dyn OwnerActor>>,
    pub(crate) success: Route<SocketCreated>,
    pub(crate) failure: Route<SocketFailed>,
}

impl Default for Routes {
    fn default() -> Self {
        Routes {
            owner: None,
            success: Route::Off,
            failure: Route::Off,
        }
    }
}

impl Clone for Routes {
    fn clone(&self) -> Self {
        Routes {
            owner: self.owner.as_ref().map(|owner| owner.clone_box()),
            success: self.success.clone(),
            failure: self.failure.clone(),
        }
    }
}

impl fmt::Debug for Routes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Routes")
            .field("owner", &self.owner.is_some())
            .finish_non_exhaustive()
    }
}

/// Where a factory's messages go; shared with the sweeper, which only reads it.
pub(crate) struct Owners {
    owner: Option<Box<dyn OwnerActor>>,
    success: RefCell<Route<SocketCreated>>,
    failure: RefCell<Route<SocketFailed>>,
}

impl fmt::Debug for Owners {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Owners")
            .field("owner", &self.owner.is_some())
            .finish_non_exhaustive()
    }
}

impl Owners {
    pub(crate) fn new(routes: Routes) -> Rc<Owners> {
        Rc::new(Owners {
            owner: routes.owner,
            success: RefCell::new(routes.success),
            failure: RefCell::new(routes.failure),
        })
    }

    /// Sends to the success route; gives the message back when it goes nowhere, or can no
    /// longer be reached.
    pub(crate) fn deliver(&self, created: SocketCreated) -> Result<(), SocketCreated> {
        self.send(&self.success, created)
    }

    /// Sends to the failure route; gives the message back when there is none to take it.
    pub(crate) fn report(&self, failed: SocketFailed) -> Result<(), SocketFailed> {
        self.send(&self.failure, failed)
    }

    /// Whether a success route is set (reachable or not).
    pub(crate) fn has_success(&self) -> bool {
        !matches!(*self.success.borrow(), Route::Off)
    }

    /// Whether a success route is set and reachable: the condition to accept.
    pub(crate) fn can_deliver(&self) -> bool {
        self.reachable(&self.success) == Some(true)
    }

    /// The owner is gone when none of the routes it set can be reached. With none set there is
    /// nobody to lose.
    pub(crate) fn gone(&self) -> bool {
        match (self.reachable(&self.success), self.reachable(&self.failure)) {
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

    /// Whether a route reaches a live actor; `None` when it goes nowhere.
    fn reachable<M: Event>(&self, route: &RefCell<Route<M>>) -> Option<bool>
    where
        M::Result: Send,
    {
        match &*route.borrow() {
            Route::Off => None,
            Route::Owner => Some(self.owner.as_ref().is_some_and(|owner| owner.connected())),
            Route::To(recipient) => Some(recipient.connected()),
        }
    }

    fn send<M: Event>(&self, route: &RefCell<Route<M>>, message: M) -> Result<(), M>
    where
        M::Result: Send,
    {
        match &*route.borrow() {
            Route::To(recipient) if recipient.connected() => recipient.do_send(message),
            Route::Owner => match &self.owner {
                Some(owner) if owner.connected() => message.send_to(owner.as_ref()),
                _ => return Err(message),
            },
            _ => return Err(message),
        }
        Ok(())
    }
}

fn apply<M>(route: &RefCell<Route<M>>, change: EventChange<M>)
where
    M: Message + Send,
    M::Result: Send,
{
    match change {
        EventChange::Keep => {}
        EventChange::Set(recipient) => *route.borrow_mut() = Route::To(recipient),
        EventChange::Disable => *route.borrow_mut() = Route::Off,
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

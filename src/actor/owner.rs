//! The owner's recipients, held weakly, and one owner check per Arbiter instead of a timer per
//! factory.
//!
//! A factory holds its owner and recipients as actix holds a parent from a child: weakly
//! ([`WeakAddr`], [`WeakRecipient`]), so an owner stops when its own last `Addr` is dropped,
//! whatever factories it started.
//!
//! actix gives no signal when an actor's mailbox closes, so a factory learns that its owner is
//! gone only by looking: at each delivery, and for long-lived factories (servers, one-shot
//! factories still holding something after their first turn) periodically. One sweeping task
//! per Arbiter and period looks at every such factory's recipients; a timer per factory would
//! cost each idle server a timer entry and a wake-up per period.
//!
//! The sweeps keep no timer on their Arbiter either: a timer in a tokio runtime's wheel costs
//! every park of that runtime about 150 instructions (the wheel is searched and the clock read
//! before and after each `epoll_wait`), which a server pays once per connection. One thread of
//! the process (the [`clock`]) rings each Arbiter's sweep on time instead; it runs only while
//! some sweep is registered, and ends when the last one goes.
//!
//! A delivery upgrades the owner's weak address (in actix 0.13 that builds an `AddressSender`:
//! two `Arc` allocations, freed again when it drops). Within one turn of the accept loop the
//! upgraded address is kept for the next client of the same burst ([`Owners::turn`]) and
//! dropped when the turn ends: never held across turns.

use std::cell::RefCell;
use std::fmt;
use std::rc::{Rc, Weak};
use std::time::Duration;

use actix::dev::ToEnvelope;
use actix::{Actor, Addr, Handler, Message, WeakAddr, WeakRecipient};

use crate::actor::messages::{EventChange, SocketCreated, SocketFailed};

/// An actor that takes both of a factory's messages. One address serves both routes: two
/// `Recipient`s made from it would each carry their own boxed sender, and every idle factory
/// would pay for the second.
pub(crate) trait OwnerActor: Send + 'static {
    fn connected(&self) -> bool;
    /// Sends when the owner is alive (one upgrade of the weak address); gives it back if not.
    fn created(&self, created: SocketCreated) -> Result<(), SocketCreated>;
    fn failed(&self, failed: SocketFailed) -> Result<(), SocketFailed>;
    fn clone_box(&self) -> Box<dyn OwnerActor>;
    /// The factory's routing state, with this address stored inline.
    fn into_owners(self: Box<Self>, table: Table) -> Rc<Owners>;
    /// A turn begins (true) or ends (false): within it, one upgraded address serves every
    /// delivery; at its end it is dropped.
    fn turn(&self, _on: bool) {}
}

/// The owner's weak address, and while a turn lasts, the strong one upgraded for it.
struct Weakly<A: Actor> {
    weak: WeakAddr<A>,
    turn: RefCell<Turn<A>>,
}

/// Whether a turn is under way, with its upgraded address once a delivery has made one.
enum Turn<A: Actor> {
    Off,
    On(Option<Addr<A>>),
}

impl<A: Actor> Weakly<A> {
    fn new(weak: WeakAddr<A>) -> Self {
        Weakly {
            weak,
            turn: RefCell::new(Turn::Off),
        }
    }

    /// Sends to the owner when it is alive; gives the message back if not. One upgrade per
    /// turn (or per message outside one).
    #[inline]
    fn send<M>(&self, message: M) -> Result<(), M>
    where
        A: Handler<M>,
        A::Context: ToEnvelope<A, M>,
        M: Message + Send + 'static,
        M::Result: Send,
    {
        let mut turn = self.turn.borrow_mut();
        match &mut *turn {
            Turn::Off => send_to_addr(&self.weak, message),
            Turn::On(held) => {
                if held.is_none() {
                    *held = self.weak.upgrade();
                }
                match held {
                    Some(owner) if owner.connected() => {
                        owner.do_send(message);
                        Ok(())
                    }
                    _ => Err(message),
                }
            }
        }
    }
}

impl<A> OwnerActor for WeakAddr<A>
where
    A: Actor + Handler<SocketCreated> + Handler<SocketFailed>,
    A::Context: ToEnvelope<A, SocketCreated> + ToEnvelope<A, SocketFailed>,
{
    fn connected(&self) -> bool {
        self.upgrade().is_some_and(|owner| owner.connected())
    }

    fn created(&self, created: SocketCreated) -> Result<(), SocketCreated> {
        send_to_addr(self, created)
    }

    fn failed(&self, failed: SocketFailed) -> Result<(), SocketFailed> {
        send_to_addr(self, failed)
    }

    fn clone_box(&self) -> Box<dyn OwnerActor> {
        Box::new(self.clone())
    }

    fn into_owners(self: Box<Self>, table: Table) -> Rc<Owners> {
        share(Weakly::new(*self), table)
    }
}

impl<A> OwnerActor for Weakly<A>
where
    A: Actor + Handler<SocketCreated> + Handler<SocketFailed>,
    A::Context: ToEnvelope<A, SocketCreated> + ToEnvelope<A, SocketFailed>,
{
    fn connected(&self) -> bool {
        OwnerActor::connected(&self.weak)
    }

    #[inline]
    fn created(&self, created: SocketCreated) -> Result<(), SocketCreated> {
        self.send(created)
    }

    fn failed(&self, failed: SocketFailed) -> Result<(), SocketFailed> {
        self.send(failed)
    }

    fn clone_box(&self) -> Box<dyn OwnerActor> {
        Box::new(self.weak.clone())
    }

    fn into_owners(self: Box<Self>, table: Table) -> Rc<Owners> {
        share(*self, table)
    }

    fn turn(&self, on: bool) {
        // The held address (if any) drops here, at the end of the turn, after the borrow.
        let _ended = std::mem::replace(
            &mut *self.turn.borrow_mut(),
            if on { Turn::On(None) } else { Turn::Off },
        );
    }
}

fn send_to_addr<A, M>(owner: &WeakAddr<A>, message: M) -> Result<(), M>
where
    A: Actor + Handler<M>,
    A::Context: ToEnvelope<A, M>,
    M: Message + Send + 'static,
    M::Result: Send,
{
    match owner.upgrade() {
        Some(owner) if owner.connected() => {
            owner.do_send(message);
            Ok(())
        }
        _ => Err(message),
    }
}

/// The routing state with `owner` inline, its type erased.
fn share<O: OwnerActor>(owner: O, table: Table) -> Rc<Owners> {
    Rc::new(Shared {
        table: RefCell::new(table),
        owner,
    })
}

/// No owner actor: only recipients (or nothing) were given.
struct NoOwner;

impl OwnerActor for NoOwner {
    fn connected(&self) -> bool {
        false
    }

    // Never called: no route leads to a missing owner.
    fn created(&self, created: SocketCreated) -> Result<(), SocketCreated> {
        Err(created)
    }

    fn failed(&self, failed: SocketFailed) -> Result<(), SocketFailed> {
        Err(failed)
    }

    fn clone_box(&self) -> Box<dyn OwnerActor> {
        Box::new(NoOwner)
    }

    fn into_owners(self: Box<Self>, table: Table) -> Rc<Owners> {
        share(*self, table)
    }
}

/// A message a factory sends, and how it reaches an [`OwnerActor`].
pub(crate) trait Event: Message + Send + Sized
where
    Self::Result: Send,
{
    fn send_to(self, owner: &dyn OwnerActor) -> Result<(), Self>;
}

impl Event for SocketCreated {
    #[inline]
    fn send_to(self, owner: &dyn OwnerActor) -> Result<(), Self> {
        owner.created(self)
    }
}

impl Event for SocketFailed {
    fn send_to(self, owner: &dyn OwnerActor) -> Result<(), Self> {
        owner.failed(self)
    }
}

/// Where one kind of message goes, as the builder is told.
pub(crate) enum Route<M: Message + Send>
where
    M::Result: Send,
{
    /// Nowhere (not set, or disabled).
    Off,
    /// To the owner actor.
    Owner,
    /// To this recipient (held weakly).
    To(WeakRecipient<M>),
}

impl<M: Message + Send> Route<M>
where
    M::Result: Send,
{
    /// The compact form kept by a running factory: a recipient, or "to the owner".
    fn split(self) -> (Option<WeakRecipient<M>>, bool) {
        match self {
            Route::Off => (None, false),
            Route::Owner => (None, true),
            Route::To(recipient) => (Some(recipient), false),
        }
    }
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

impl Routes {
    /// Whether no recipient at all is given.
    pub(crate) fn is_empty(&self) -> bool {
        matches!(
            (&self.owner, &self.success, &self.failure),
            (None, Route::Off, Route::Off)
        )
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

/// Where each kind of message goes: its recipient if set, else the owner actor if `*_to_owner`,
/// else nowhere. (Two `Route`s would take a word more each, and every idle factory has one.)
pub(crate) struct Table {
    success: Option<WeakRecipient<SocketCreated>>,
    failure: Option<WeakRecipient<SocketFailed>>,
    success_to_owner: bool,
    failure_to_owner: bool,
    /// The last delivery to the success route failed: its actor is gone.
    success_lost: bool,
}

/// A factory's routing state with its owner's address inline: one allocation, shared with the
/// sweeper, which only reads it.
pub(crate) struct Shared<O: ?Sized> {
    table: RefCell<Table>,
    owner: O,
}

/// [`Shared`] with the owner's type erased, as factories hold it.
pub(crate) type Owners = Shared<dyn OwnerActor>;

impl fmt::Debug for Owners {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Owners").finish_non_exhaustive()
    }
}

impl Owners {
    pub(crate) fn new(routes: Routes) -> Rc<Owners> {
        let (success, success_to_owner) = routes.success.split();
        let (failure, failure_to_owner) = routes.failure.split();
        let table = Table {
            success,
            failure,
            success_to_owner,
            failure_to_owner,
            success_lost: false,
        };
        let owner = routes.owner.unwrap_or_else(|| Box::new(NoOwner));
        owner.into_owners(table)
    }

    /// Sends to the success route; gives the message back when it goes nowhere, or can no
    /// longer be reached.
    #[inline]
    pub(crate) fn deliver(&self, created: SocketCreated) -> Result<(), SocketCreated> {
        let mut table = self.table.borrow_mut();
        let sent = send(&table.success, table.success_to_owner, &self.owner, created);
        // Remembered, so the accept loop stops taking clients for a success recipient that is
        // gone without upgrading its weak address at every poll.
        table.success_lost = sent.is_err();
        sent
    }

    /// One turn of deliveries (a burst of accepted clients): the owner's address is upgraded at
    /// most once in it, and dropped when the returned guard is.
    pub(crate) fn turn(&self) -> TurnGuard<'_> {
        self.owner.turn(true);
        TurnGuard(self)
    }

    /// Sends to the failure route; gives the message back when there is none to take it.
    pub(crate) fn report(&self, failed: SocketFailed) -> Result<(), SocketFailed> {
        let table = self.table.borrow();
        send(&table.failure, table.failure_to_owner, &self.owner, failed)
    }

    /// Whether no route is set at all: nothing the factory makes could ever be received.
    pub(crate) fn is_empty(&self) -> bool {
        let table = self.table.borrow();
        table.success.is_none()
            && table.failure.is_none()
            && !table.success_to_owner
            && !table.failure_to_owner
    }

    /// Whether a success route is set (reachable or not).
    pub(crate) fn has_success(&self) -> bool {
        let table = self.table.borrow();
        table.success.is_some() || table.success_to_owner
    }

    /// Whether a success route is set and its last delivery, if any, went through: the
    /// condition to accept. (A lost recipient is found at delivery; `SetEvents` clears it.)
    pub(crate) fn can_deliver(&self) -> bool {
        let table = self.table.borrow();
        (table.success.is_some() || table.success_to_owner) && !table.success_lost
    }

    /// The owner is gone when none of the routes it set can be reached. With none set there is
    /// nobody to lose.
    pub(crate) fn gone(&self) -> bool {
        let table = self.table.borrow();
        let success = reachable(&table.success, table.success_to_owner, &self.owner);
        let failure = reachable(&table.failure, table.failure_to_owner, &self.owner);
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
        let table = &mut *self.table.borrow_mut();
        if !matches!(success, EventChange::Keep) {
            table.success_lost = false;
        }
        apply(&mut table.success, &mut table.success_to_owner, success);
        apply(&mut table.failure, &mut table.failure_to_owner, failure);
    }
}

/// Ends a turn of deliveries when dropped, letting go of the owner's upgraded address.
pub(crate) struct TurnGuard<'a>(&'a Owners);

impl Drop for TurnGuard<'_> {
    fn drop(&mut self) {
        self.0.owner.turn(false);
    }
}

/// Whether a route reaches a live actor; `None` when it goes nowhere.
fn reachable<M: Event>(
    recipient: &Option<WeakRecipient<M>>,
    to_owner: bool,
    owner: &dyn OwnerActor,
) -> Option<bool>
where
    M::Result: Send,
{
    match recipient {
        Some(recipient) => Some(recipient.upgrade().is_some_and(|r| r.connected())),
        None if to_owner => Some(owner.connected()),
        None => None,
    }
}

#[inline]
fn send<M: Event>(
    recipient: &Option<WeakRecipient<M>>,
    to_owner: bool,
    owner: &dyn OwnerActor,
    message: M,
) -> Result<(), M>
where
    M::Result: Send,
{
    match recipient {
        Some(recipient) => match recipient.upgrade() {
            Some(recipient) if recipient.connected() => recipient.do_send(message),
            _ => return Err(message),
        },
        None if to_owner => return message.send_to(owner),
        None => return Err(message),
    }
    Ok(())
}

fn apply<M>(recipient: &mut Option<WeakRecipient<M>>, to_owner: &mut bool, change: EventChange<M>)
where
    M: Message + Send,
    M::Result: Send,
{
    match change {
        EventChange::Keep => return,
        EventChange::Set(set) => *recipient = Some(set.downgrade()),
        EventChange::Disable => *recipient = None,
    }
    *to_owner = false;
}

/// Tells a factory that the sweeper found its owner gone.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub(crate) struct OwnerGone;

struct Watched {
    owners: Weak<Owners>,
    factory: WeakRecipient<OwnerGone>,
}

type Sweep = Rc<RefCell<Vec<Watched>>>;

thread_local! {
    /// This Arbiter's sweeps, one per period in use.
    static SWEEPS: RefCell<Vec<(Duration, Sweep)>> = const { RefCell::new(Vec::new()) };
}

/// Has this Arbiter's sweeper look at `owners` every `period`, telling `factory` when they are
/// gone. The entry goes once the factory has dropped its owners (stopped or restarted).
pub(crate) fn watch(period: Duration, owners: &Rc<Owners>, factory: WeakRecipient<OwnerGone>) {
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
    // `validate` refuses a zero period and the builder caps it; a zero one here would spin the
    // clock (or panic in `interval_at`), so it is taken as 1 ms rather than trusted.
    let period = period.max(Duration::from_millis(1));
    let mut beat = Beat::new(period);
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

/// What wakes a sweep: the process's [`clock`] thread, or (when no thread can be started) a
/// timer on this Arbiter.
enum Beat {
    Bell(clock::Bell),
    Timer(tokio::time::Interval),
}

impl Beat {
    fn new(period: Duration) -> Beat {
        match clock::Bell::every(period) {
            Some(bell) => Beat::Bell(bell),
            None => {
                let first = crate::desc::time::soon_after(period);
                let mut beat = tokio::time::interval_at(first, period);
                beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                Beat::Timer(beat)
            }
        }
    }

    async fn tick(&mut self) {
        match self {
            Beat::Bell(bell) => bell.rung().await,
            Beat::Timer(timer) => {
                timer.tick().await;
            }
        }
    }
}

/// The process's owner-check clock: one thread that rings each registered sweep every period.
/// It starts with the first sweep and ends, within moments, once the last one has gone.
pub(crate) mod clock {
    use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
    use std::time::{Duration, Instant};

    use tokio::sync::Notify;

    /// One sweep's bell: rung by the clock thread every period.
    pub(crate) struct Bell(Option<Arc<Notify>>);

    struct Ringing {
        period: Duration,
        due: Instant,
        bell: Weak<Notify>,
    }

    struct Clock {
        bells: Vec<Ringing>,
        /// The thread is running (it clears this as it ends, under the lock).
        running: bool,
    }

    static CLOCK: Mutex<Clock> = Mutex::new(Clock {
        bells: Vec::new(),
        running: false,
    });
    /// A bell was added or dropped: the thread looks again.
    static CHANGED: Condvar = Condvar::new();

    fn lock() -> MutexGuard<'static, Clock> {
        // Nothing panics under the lock; a poisoned one holds a consistent list all the same.
        CLOCK.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the clock thread is running.
    #[cfg(test)]
    pub(crate) fn running() -> bool {
        lock().running
    }

    impl Bell {
        /// A bell rung every `period`; `None` when no thread can be started for it.
        pub(crate) fn every(period: Duration) -> Option<Bell> {
            let notify = Arc::new(Notify::new());
            let mut clock = lock();
            clock.bells.push(Ringing {
                period,
                due: after(Instant::now(), period),
                bell: Arc::downgrade(&notify),
            });
            if clock.running {
                CHANGED.notify_one();
            } else {
                let started = std::thread::Builder::new()
                    .name("owner-check".to_owned())
                    .spawn(run);
                if started.is_err() {
                    clock.bells.pop();
                    return None;
                }
                clock.running = true;
            }
            Some(Bell(Some(notify)))
        }

        /// Waits for the next ring (at once if one came meanwhile).
        pub(crate) async fn rung(&self) {
            if let Some(notify) = &self.0 {
                notify.notified().await;
            }
        }
    }

    impl Drop for Bell {
        fn drop(&mut self) {
            // Gone before the thread is told: it sees the bell gone and, if it was the last,
            // ends.
            drop(self.0.take());
            let _clock = lock();
            CHANGED.notify_one();
        }
    }

    /// `period` after `now`, or as far as an instant goes.
    fn after(now: Instant, period: Duration) -> Instant {
        now.checked_add(period)
            .or_else(|| now.checked_add(crate::desc::spec::MAX_OWNER_CHECK))
            .unwrap_or(now)
    }

    fn run() {
        let mut clock = lock();
        loop {
            clock
                .bells
                .retain(|ringing| ringing.bell.strong_count() > 0);
            if clock.bells.is_empty() {
                clock.running = false;
                return;
            }
            let now = Instant::now();
            let mut next = None::<Instant>;
            for ringing in &mut clock.bells {
                if ringing.due <= now {
                    if let Some(bell) = ringing.bell.upgrade() {
                        bell.notify_one();
                    }
                    ringing.due = after(now, ringing.period);
                }
                next = Some(next.map_or(ringing.due, |next| next.min(ringing.due)));
            }
            let wait = next.map_or(Duration::ZERO, |next| next.saturating_duration_since(now));
            clock = CHANGED
                .wait_timeout(clock, wait)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
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

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;
    use crate::actor::messages::FactoryId;
    use crate::desc::error::{Failure, Operation};
    use crate::desc::kind::{Domain, SocketType};
    use crate::testing::{wait_until, Events};

    const LIMIT: Duration = Duration::from_secs(5);

    fn created() -> SocketCreated {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)
            .expect("a socket");
        SocketCreated {
            socket,
            peer: None,
            local: None,
            id: FactoryId::next(),
            credentials: None,
            domain: Domain::Inet,
            socket_type: SocketType::Datagram,
            _permit: None,
            #[cfg(feature = "proxy-protocol")]
            proxy_header: None,
        }
    }

    fn failed() -> SocketFailed {
        let error = io::Error::from_raw_os_error(libc::EMFILE);
        SocketFailed::new(Failure::new(Operation::Accept, error), FactoryId::next())
    }

    #[actix::test]
    async fn one_owner_address_serves_both_routes_until_each_is_changed() {
        let mut first = Events::start();
        let mut second = Events::start();
        let owners = Owners::new(Routes {
            owner: Some(Box::new(first.owner().downgrade())),
            success: Route::Owner,
            failure: Route::Owner,
        });
        assert!(owners.has_success() && owners.can_deliver() && !owners.gone());
        owners.deliver(created()).expect("sent to the owner");
        first.next_created(LIMIT).await.expect("at the owner");

        // Success moves to another actor; failures still go to the owner.
        let recipient = second.owner().clone().recipient();
        owners.change(EventChange::Set(recipient), EventChange::Keep);
        owners
            .deliver(created())
            .expect("sent to the new recipient");
        second
            .next_created(LIMIT)
            .await
            .expect("at the new recipient");
        owners.report(failed()).expect("sent to the owner");
        first
            .next_failed(LIMIT)
            .await
            .expect("failure at the owner");

        // With failures disabled, only the success recipient counts: the owner actor may go.
        owners.change(EventChange::Keep, EventChange::Disable);
        assert!(owners.report(failed()).is_err(), "nowhere to report");
        first.stop_owner();
        let first_addr = first.owner().clone();
        assert!(
            wait_until(LIMIT, || !first_addr.connected()).await,
            "the owner stopped"
        );
        assert!(!owners.gone(), "the success recipient is alive");
        second.stop_owner();
        assert!(wait_until(LIMIT, || owners.gone()).await, "both gone");
        assert!(
            owners.deliver(created()).is_err(),
            "undeliverable: given back"
        );
    }

    /// An owner whose only `Addr` the test holds; says when it has stopped.
    struct Sink(std::sync::Arc<std::sync::atomic::AtomicBool>);

    impl Actor for Sink {
        type Context = actix::Context<Self>;

        fn stopped(&mut self, _: &mut actix::Context<Self>) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    impl Handler<SocketCreated> for Sink {
        type Result = ();
        fn handle(&mut self, _: SocketCreated, _: &mut actix::Context<Self>) {}
    }

    impl Handler<SocketFailed> for Sink {
        type Result = ();
        fn handle(&mut self, _: SocketFailed, _: &mut actix::Context<Self>) {}
    }

    #[actix::test]
    async fn a_turn_keeps_the_owner_only_until_it_ends() {
        let stopped = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let owner = Sink(std::sync::Arc::clone(&stopped)).start();
        let owners = Owners::new(Routes {
            owner: Some(Box::new(owner.downgrade())),
            success: Route::Owner,
            failure: Route::Owner,
        });
        {
            let _turn = owners.turn();
            for _ in 0..3 {
                owners.deliver(created()).expect("sent within the turn");
            }
            owners.report(failed()).expect("reported within the turn");
            // The owner's last Addr goes mid-turn: the turn's upgraded address may deliver
            // the rest of the burst, and is let go when the turn ends.
            drop(owner);
        }
        assert!(
            wait_until(LIMIT, || stopped.load(std::sync::atomic::Ordering::SeqCst)).await,
            "the owner stopped once the turn was over"
        );
        assert!(owners.gone());
        let _turn = owners.turn();
        assert!(
            owners.deliver(created()).is_err(),
            "a later turn finds it gone"
        );
    }

    #[actix::test]
    async fn the_clock_rings_a_bell_every_period() {
        let bell = clock::Bell::every(Duration::from_millis(10)).expect("a clock thread");
        assert!(clock::running());
        for _ in 0..3 {
            tokio::time::timeout(LIMIT, bell.rung())
                .await
                .expect("rung within the limit");
        }
    }

    #[actix::test]
    async fn no_routes_means_nobody_to_lose() {
        let owners = Owners::new(Routes::default());
        assert!(!owners.has_success() && !owners.can_deliver() && !owners.gone());
        assert!(owners.deliver(created()).is_err());
        assert!(owners.report(failed()).is_err());
    }
}

//! Sessions outliving their connection: when a connection is lost (not closed by the
//! client or the server), its session — handler, state, subscriptions, queued events — is
//! parked for `ServerLimits::resume_grace`; a client presenting the session id in its next
//! `Hello` gets it back — if it authenticates as the identity that opened the session
//! (another identity presenting the id gets a new session of its own, and the session is
//! left alone). A session still attached to a connection the server has not yet seen die
//! is taken from it.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    sync::Notify,
    task::AbortHandle,
    time::{timeout_at, Instant},
};
use tracing::debug;

use super::CallRate;
use crate::{
    handler::{Factory, RpcHandler, StateOf},
    memory_budget::{Charge, PARKED_SESSION_BYTES},
    state_handle::StateHandle,
    stats::{Meter, ServerCounters, Unparked},
    sync::lock,
    topics::{Outbox, Subscriptions},
};

/// How long a resuming client waits for its session to come off a connection the server
/// still thinks is alive.
const TAKEOVER_WAIT: Duration = Duration::from_secs(2);

/// Everything a session is, apart from its connection.
pub(crate) struct Session<H: RpcHandler> {
    pub(crate) id: [u8; 16],
    /// The subject of the identity that opened the session: only it may resume it.
    pub(crate) owner: String,
    /// Where its last connection came from (as the connection caps count addresses).
    pub(crate) address: IpAddr,
    pub(crate) handler: Arc<H>,
    pub(crate) state: StateHandle<StateOf<H>>,
    pub(crate) outbox: Arc<Outbox>,
    pub(crate) subscriptions: Subscriptions,
    pub(crate) meter: Meter,
    /// The call-rate bucket, kept across resumption.
    pub(crate) rate: Option<CallRate>,
}

impl<H: RpcHandler> Session<H> {
    /// Ends the session for good: its subscriptions close (firing `Removed` for topics
    /// left without subscribers) and the handler is dropped with the last reference.
    pub(crate) fn close(self) {
        self.subscriptions.close();
    }
}

enum Entry<H: RpcHandler> {
    /// On a connection; notifying `kick` makes the connection let go of it.
    Live { kick: Arc<Notify>, owner: String },
    /// Waiting for its client; `expiry` closes it when the grace period ends. Charged to
    /// the server's memory budget while parked.
    Parked {
        session: Session<H>,
        expiry: AbortHandle,
        _charge: Charge,
    },
}

/// What parked sessions are counted against (`max_connections_per_ip` each).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Holder {
    Address(IpAddr),
    Identity(String),
}

/// The server's sessions, for resumption, and the factory for new ones.
pub(crate) struct Sessions<H: RpcHandler> {
    pub(crate) factory: Factory<H>,
    grace: Duration,
    /// Most sessions parked at once: a peer that connects and vanishes over and over
    /// cannot make the server hold more (beyond it, lost sessions close at once).
    max_parked: u64,
    /// Most sessions parked at once from one address, and of one authenticated identity
    /// (`max_connections_per_ip`): one peer cannot take the whole parked set.
    max_parked_per_holder: u32,
    parked_per_holder: Mutex<HashMap<Holder, u32>>,
    /// Sessions are counted per identity too (the server authenticates; without it every
    /// session has the same, anonymous, identity).
    per_identity: bool,
    entries: Mutex<HashMap<[u8; 16], Entry<H>>>,
    parked: Notify,
    counters: Arc<ServerCounters>,
}

impl<H: RpcHandler> Sessions<H> {
    pub(crate) fn new(
        factory: Factory<H>,
        grace: Duration,
        (max_parked, max_parked_per_holder): (u32, u32),
        per_identity: bool,
        counters: Arc<ServerCounters>,
    ) -> Arc<Self> {
        Arc::new(Self {
            factory,
            grace,
            max_parked: u64::from(max_parked),
            max_parked_per_holder,
            parked_per_holder: Mutex::default(),
            per_identity,
            entries: Mutex::new(HashMap::new()),
            parked: Notify::new(),
            counters,
        })
    }

    /// Registers a session of `owner` that just went live; `kick` ends its connection if
    /// a resuming client of the same identity claims the session.
    pub(crate) fn attach(&self, id: [u8; 16], owner: &str, kick: Arc<Notify>) {
        if !self.grace.is_zero() {
            let owner = owner.to_owned();
            lock(&self.entries).insert(id, Entry::Live { kick, owner });
        }
    }

    /// The connection of session `session` ended. A lost connection parks the session
    /// (when resumption is on and fewer than `max_parked` are parked, fewer than
    /// `max_parked_per_holder` from its address and of its identity, and the memory budget
    /// takes it); otherwise the session closes.
    pub(crate) fn detach(self: &Arc<Self>, session: Session<H>, lost: bool) {
        let id = session.id;
        let keep = lost && !self.grace.is_zero();
        let Some(charge) = keep.then(|| self.take_place(&session)).flatten() else {
            lock(&self.entries).remove(&id);
            return session.close();
        };
        let sessions = Arc::clone(self);
        let expiry = tokio::spawn(async move {
            tokio::time::sleep(sessions.grace).await;
            sessions.expire(id);
        });
        let parked = Entry::Parked {
            session,
            expiry: expiry.abort_handle(),
            _charge: charge,
        };
        lock(&self.entries).insert(id, parked);
        self.counters.session_parked();
        debug!("session parked for resumption");
        self.parked.notify_waiters();
    }

    /// Who a parked session counts against: its address, and its identity if sessions
    /// are counted per identity.
    fn holders(&self, session: &Session<H>) -> impl Iterator<Item = Holder> {
        let identity = self
            .per_identity
            .then(|| Holder::Identity(session.owner.clone()));
        [Some(Holder::Address(session.address)), identity]
            .into_iter()
            .flatten()
    }

    /// A place in the parked set for `session`, if there is one, and its charge to the
    /// memory budget.
    fn take_place(&self, session: &Session<H>) -> Option<Charge> {
        if self.counters.parked() >= self.max_parked {
            debug!(
                max = self.max_parked,
                "too many parked sessions; closing this one"
            );
            return None;
        }
        let mut per_holder = lock(&self.parked_per_holder);
        for holder in self.holders(session) {
            if per_holder.get(&holder).copied().unwrap_or(0) >= self.max_parked_per_holder {
                debug!(
                    max = self.max_parked_per_holder,
                    ?holder,
                    "too many parked sessions from this address or identity; closing this one"
                );
                return None;
            }
        }
        let Ok(charge) = self.counters.memory().charge(PARKED_SESSION_BYTES) else {
            debug!("the memory budget is spent; closing this session instead of parking it");
            return None;
        };
        for holder in self.holders(session) {
            *per_holder.entry(holder).or_default() += 1;
        }
        Some(charge)
    }

    /// Parked session `session` left the parked set.
    fn give_place(&self, session: &Session<H>) {
        let mut per_holder = lock(&self.parked_per_holder);
        for holder in self.holders(session) {
            if let Some(parked) = per_holder.get_mut(&holder) {
                *parked = parked.saturating_sub(1);
                if *parked == 0 {
                    per_holder.remove(&holder);
                }
            }
        }
    }

    fn expire(&self, id: [u8; 16]) {
        let entry = lock(&self.entries).remove(&id);
        if let Some(Entry::Parked { session, .. }) = entry {
            self.give_place(&session);
            debug!("parked session expired");
            self.counters.session_unparked(Unparked::Expired);
            session.close();
        }
    }

    /// Takes session `id` for a client resuming as `subject`: a parked one at once, a live
    /// one after its connection lets go of it (within a short wait). `None` if there is no
    /// such session (expired, closed, or never existed) or it belongs to another identity,
    /// which then keeps it untouched.
    pub(crate) async fn resume(&self, id: [u8; 16], subject: &str) -> Option<Session<H>> {
        let deadline = Instant::now() + TAKEOVER_WAIT;
        loop {
            let parked = self.parked.notified();
            {
                let mut entries = lock(&self.entries);
                let owner = match entries.get(&id)? {
                    Entry::Parked { session, .. } => &session.owner,
                    Entry::Live { owner, .. } => owner,
                };
                if owner != subject {
                    debug!("a resume presented another identity's session; not resumed");
                    return None;
                }
                match entries.remove(&id) {
                    Some(Entry::Parked {
                        session, expiry, ..
                    }) => {
                        expiry.abort();
                        self.give_place(&session);
                        self.counters.session_unparked(Unparked::Resumed);
                        return Some(session);
                    }
                    Some(Entry::Live { kick, owner }) => {
                        kick.notify_one();
                        entries.insert(id, Entry::Live { kick, owner });
                    }
                    None => return None,
                }
            }
            timeout_at(deadline, parked).await.ok()?;
        }
    }

    /// Closes every parked session (at shutdown).
    pub(crate) fn close_all(&self) {
        let entries: Vec<_> = lock(&self.entries).drain().collect();
        for (_, entry) in entries {
            if let Entry::Parked {
                session, expiry, ..
            } = entry
            {
                expiry.abort();
                self.give_place(&session);
                self.counters.session_unparked(Unparked::ShutDown);
                session.close();
            }
        }
    }
}

//! Topics shared by several servers through NATS (the `nats` feature): the
//! [`ClusterConfig`], the link's [`ClusterStats`], and the machinery between the topic hub
//! and NATS — interest-based subscriptions, forwarding, and gaps.
//!
//! `docs/PROTOCOL.md` §10 Clusters over NATS specifies what travels over NATS; this module follows it.

mod config;
mod inbound;
mod interest;
mod link;
mod outbound;
mod stats;
mod subject;
mod topic_set;

use std::{str::FromStr, sync::Arc};

/// The NATS client HardLight's cluster link is built on, for
/// [`ClusterConfig::with_connect_options`].
pub use async_nats;
use async_nats::HeaderMap;
use hardlight_core::{topic::is_event_of, Codable, Compression};
use tokio::{sync::watch, task::JoinSet};
use tracing::error;

pub use config::ClusterConfig;
pub(crate) use outbound::Outbound;
pub(crate) use stats::ClusterCounters;
pub use stats::ClusterStats;

use crate::{error::ServerError, topics::Hub};
use inbound::{Inbound, IsEventOf, SCHEMA_HEADER};
use interest::{Interest, Marks};
use link::LinkState;
use subject::Subjects;

/// A server's part in a cluster, before and while it runs.
pub(crate) struct Cluster {
    config: ClusterConfig,
    outbound: Arc<Outbound>,
    counters: Arc<ClusterCounters>,
    /// The service's schema hash, as the [`SCHEMA_HEADER`] value.
    schema: String,
    is_event_of: IsEventOf,
}

impl Cluster {
    /// The cluster part of a server of a service with event type `E` and schema hash
    /// `schema`.
    pub(crate) fn new<E: Codable>(config: ClusterConfig, schema: u64) -> Self {
        let schema = format!("{schema:016x}");
        let counters = Arc::new(ClusterCounters::default());
        let header_len = header_wire_len(&schema);
        Self {
            outbound: Arc::new(Outbound::new(
                config.forward_queue,
                header_len,
                Arc::clone(&counters),
            )),
            config,
            counters,
            schema,
            is_event_of: is_event_of::<E>,
        }
    }

    /// Where emitters queue events for the other servers.
    pub(crate) fn outbound(&self) -> &Arc<Outbound> {
        &self.outbound
    }

    /// The link's counters.
    pub(crate) fn counters(&self) -> &Arc<ClusterCounters> {
        &self.counters
    }

    /// Checks the configuration: the subject prefix and the NATS URLs.
    pub(crate) fn check(&self) -> Result<Subjects, ServerError> {
        for url in &self.config.servers {
            if let Err(source) = async_nats::ServerAddr::from_str(url) {
                return Err(ServerError::ClusterAddress {
                    url: url.clone(),
                    source,
                });
            }
        }
        Subjects::new(&self.config.prefix).ok_or_else(|| ServerError::ClusterPrefix {
            prefix: self.config.prefix.clone(),
        })
    }

    /// Starts the link (within a tokio runtime): connecting to NATS in the background,
    /// forwarding, following the hub's topics, receiving — until the returned set of
    /// tasks is dropped.
    pub(crate) fn start(
        &self,
        hub: &Arc<Hub>,
        compression: Compression,
    ) -> Result<JoinSet<()>, ServerError> {
        let subjects = self.check()?;
        let (state, link) = watch::channel(LinkState::default());
        let origin = rand::random::<u64>();
        let marks = Arc::new(Marks::default());
        let inbound = Arc::new(Inbound {
            hub: Arc::clone(hub),
            subjects: subjects.clone(),
            schema: self.schema.clone(),
            is_event_of: self.is_event_of,
            compression,
            counters: Arc::clone(&self.counters),
            marks,
        });
        let notifier = hub.notifier();
        let (config, outbound) = (self.config.clone(), Arc::clone(&self.outbound));
        let headers = headers(&self.schema);
        let mut link_tasks = JoinSet::new();
        link_tasks.spawn(async move {
            let client = match link::connect(&config, Arc::new(state)).await {
                Ok(client) => client,
                Err(error) => {
                    error!(%error, "cluster link not started");
                    return;
                }
            };
            let mut tasks = JoinSet::new();
            match client.subscribe(subjects.gaps()).await {
                Ok(mut announcements) => {
                    let inbound = Arc::clone(&inbound);
                    tasks.spawn(async move {
                        use futures_util::StreamExt;
                        while let Some(message) = announcements.next().await {
                            inbound.announced(message);
                        }
                    });
                }
                Err(error) => error!(%error, "cluster link cannot receive gap announcements"),
            }
            let publisher = outbound::Publisher {
                client: client.clone(),
                subjects,
                headers,
                origin,
            };
            tasks.spawn(outbound::run(outbound, publisher, link.clone()));
            let interest = Interest {
                client,
                inbound,
                linger: config.linger,
                patience: config.ping_interval * 2,
                origin,
            };
            tasks.spawn(interest::run(interest, notifier, link));
            while tasks.join_next().await.is_some() {}
        });
        Ok(link_tasks)
    }
}

/// The bytes [`headers`] take in a NATS message, which count towards NATS's `max_payload`:
/// `NATS/1.0\r\n`, `Hardlight-Schema: <16 hex digits>\r\n` and `\r\n`.
fn header_wire_len(schema: &str) -> usize {
    "NATS/1.0\r\n".len() + SCHEMA_HEADER.len() + ": ".len() + schema.len() + 2 * "\r\n".len()
}

/// The headers of every message a server publishes.
fn headers(schema: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(SCHEMA_HEADER, schema);
    headers
}

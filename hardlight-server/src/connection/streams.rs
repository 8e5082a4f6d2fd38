//! Streaming calls on a multiplexed channel (WebSocket, in-process): each call's window
//! for the items the server sends, and the items the client sends, routed by call id and
//! credited back as the handler takes them.

use std::{
    collections::{hash_map::Entry, HashMap},
    sync::{Arc, Mutex},
    time::Duration,
};

use futures_util::stream;
use hardlight_core::{
    codec::Bytes,
    frame::{FrameHeader, Kind, HEADER_LEN},
    message::open_aligned_body,
    queue::Queue,
    quota::Held,
    stream::{take_window, window_cost, Inbound, STREAM_WINDOW},
    ProtocolError,
};
use tokio::sync::{mpsc, Semaphore};

use super::mux::{queue_within, Outgoing};
use crate::{session::CallEnv, sync::lock};

/// The streaming calls of one channel.
#[derive(Default, Clone)]
pub(crate) struct Streams {
    windows: Arc<Mutex<HashMap<u64, Arc<Semaphore>>>>,
    inbound: Arc<Mutex<HashMap<u64, Route>>>,
    serial: Arc<std::sync::atomic::AtomicU64>,
}

/// Where a call's items from the client go.
struct Route {
    items: mpsc::UnboundedSender<ReceivedItem>,
    /// Bytes received and not yet credited back.
    outstanding: u32,
    /// Bytes the handler took, to credit back.
    taken: u32,
    serial: u64,
}

/// An item from the client: its header, its body as received, and its share of the
/// connection's byte budget, held until the handler takes it.
type ReceivedItem = (FrameHeader, Bytes, Held);

/// What a new streaming call gets: its send window and the items its client sends.
pub(crate) struct Opened {
    pub(crate) window: Window,
    pub(crate) items: Items,
}

impl Streams {
    /// Opens streaming call `id`; `None` if a call with this id is in flight (it will be
    /// refused as a duplicate).
    pub(crate) fn open(&self, id: u64) -> Option<Opened> {
        let credit = Arc::new(Semaphore::new(STREAM_WINDOW as usize));
        match lock(&self.windows).entry(id) {
            Entry::Occupied(_) => return None,
            Entry::Vacant(slot) => slot.insert(Arc::clone(&credit)),
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let serial = self
            .serial
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        lock(&self.inbound).insert(
            id,
            Route {
                items: tx,
                outstanding: 0,
                taken: 0,
                serial,
            },
        );
        Some(Opened {
            window: Window {
                credit,
                id,
                streams: self.clone(),
            },
            items: Items {
                rx,
                id,
                serial,
                streams: self.clone(),
            },
        })
    }

    /// The client took `bytes` of call `id`'s items. Credit for a call that has ended is
    /// late, not wrong; more than was outstanding breaks the protocol.
    pub(crate) fn credit(&self, id: u64, bytes: u64) -> Result<(), String> {
        let Some(credit) = lock(&self.windows).get(&id).cloned() else {
            return Ok(());
        };
        let outstanding = STREAM_WINDOW as usize - credit.available_permits();
        match usize::try_from(bytes) {
            Ok(bytes) if bytes <= outstanding => {
                credit.add_permits(bytes);
                Ok(())
            }
            _ => Err(format!(
                "StreamCredit of {bytes} bytes for call {id}, which has {outstanding} outstanding"
            )),
        }
    }

    /// Whether call `id` takes items from the client now.
    pub(crate) fn takes(&self, id: u64) -> bool {
        lock(&self.inbound).contains_key(&id)
    }

    /// An item of call `id` from the client, within its share of the byte budget; an
    /// item past the call's window breaks the protocol. Items of a call that has ended
    /// are dropped.
    pub(crate) fn item(&self, header: FrameHeader, body: Bytes, share: Held) -> Result<(), String> {
        let mut inbound = lock(&self.inbound);
        let Some(route) = inbound.get_mut(&header.id) else {
            return Ok(());
        };
        route.outstanding = route
            .outstanding
            .saturating_add(window_cost(HEADER_LEN + body.len()));
        if route.outstanding > STREAM_WINDOW {
            return Err(ProtocolError::StreamWindowExceeded {
                id: header.id,
                window: STREAM_WINDOW,
            }
            .to_string());
        }
        let _ = route.items.send((header, body, share));
        Ok(())
    }

    /// The client sent all of call `id`'s items.
    pub(crate) fn end(&self, id: u64) {
        lock(&self.inbound).remove(&id);
    }

    /// The handler took `cost` bytes of call `id`'s items: the credit to send back, once
    /// half the window is taken.
    fn took(&self, id: u64, cost: u32) -> Option<u32> {
        let mut inbound = lock(&self.inbound);
        let route = inbound.get_mut(&id)?;
        route.taken = route.taken.saturating_add(cost);
        (route.taken >= STREAM_WINDOW / 2).then(|| {
            let grant = std::mem::take(&mut route.taken);
            route.outstanding = route.outstanding.saturating_sub(grant);
            grant
        })
    }
}

/// A streaming call's send window, taken out of the table when the call ends.
pub(crate) struct Window {
    credit: Arc<Semaphore>,
    id: u64,
    streams: Streams,
}

impl Window {
    /// Waits until an item of `frame_len` bytes fits the window, and takes its room.
    pub(crate) async fn take(&self, frame_len: usize) -> bool {
        take_window(&self.credit, frame_len).await
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        let mut windows = lock(&self.streams.windows);
        if windows
            .get(&self.id)
            .is_some_and(|credit| Arc::ptr_eq(credit, &self.credit))
        {
            windows.remove(&self.id);
        }
    }
}

/// The items the client sends on a streaming call; their route is removed when dropped.
pub(crate) struct Items {
    rx: mpsc::UnboundedReceiver<ReceivedItem>,
    id: u64,
    serial: u64,
    streams: Streams,
}

impl Items {
    /// The items as the handler reads them: opened (decompressed within the size limit),
    /// their room credited back to the client through `out` as they are taken.
    pub(crate) fn into_inbound(
        self,
        context: &CallEnv,
        out: Queue<Outgoing>,
        send_timeout: Duration,
    ) -> Inbound {
        let compressed = context.compression_negotiated();
        let max = context.limits.max_message_size();
        Box::pin(stream::unfold(Some(self), move |items| {
            let out = out.clone();
            async move {
                let mut items = items?;
                let (header, body, share) = items.rx.recv().await?;
                let cost = window_cost(HEADER_LEN + body.len());
                if let Some(grant) = items.streams.took(items.id, cost) {
                    let credit = FrameHeader::new(Kind::StreamCredit, 0)
                        .with_id(items.id)
                        .with_seq(u64::from(grant));
                    let credit = Outgoing::frame(credit.encode().to_vec());
                    queue_within(&out, credit, send_timeout).await;
                }
                // the share is released once the handler holds the item
                drop(share);
                match open_aligned_body(&header, body, compressed, max) {
                    Ok(item) => Some((Ok(item), Some(items))),
                    Err(error) => Some((Err(error), None)),
                }
            }
        }))
    }
}

impl Drop for Items {
    fn drop(&mut self) {
        let mut inbound = lock(&self.streams.inbound);
        if inbound
            .get(&self.id)
            .is_some_and(|route| route.serial == self.serial)
        {
            inbound.remove(&self.id);
        }
    }
}

//! Interceptors run before every call over every transport: they see the method, the
//! caller's identity, deadline and context, and refuse calls with a typed error before the
//! handler runs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use common::{TestServer, Via};
use hardlight::{protocol::service::BoxFuture, *};

const VIAS: [Via; 3] = [Via::Quic, Via::WebSocket, Via::Memory];

/// What an interceptor saw of one call.
#[derive(Debug, Clone, PartialEq)]
struct Sighting {
    service: &'static str,
    method: &'static str,
    subject: String,
    has_deadline: bool,
    request_id: Option<String>,
}

/// Calls `add` at most `left` times per server.
struct Quota {
    left: AtomicU32,
}

impl Interceptor for Quota {
    fn intercept<'a>(&'a self, call: InterceptedCall<'a>) -> BoxFuture<'a, Result<(), Refusal>> {
        Box::pin(async move {
            if call.method() != "add" {
                return Ok(());
            }
            // a check that waits, as one asking a quota service would
            tokio::task::yield_now().await;
            self.left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                    left.checked_sub(1)
                })
                .map(|_| ())
                .map_err(|_| Refusal::quota_exceeded("3 additions per server"))
        })
    }
}

#[tokio::test]
async fn interceptors_see_each_call_and_refuse_with_typed_errors() {
    for via in VIAS {
        let sightings = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&sightings);
        let after_refusal = Arc::new(AtomicU32::new(0));
        let later = Arc::clone(&after_refusal);
        let server = TestServer::start_with(move |config| {
            config
                .with_interceptor(move |call: &InterceptedCall<'_>| {
                    seen.lock().unwrap().push(Sighting {
                        service: call.service(),
                        method: call.method(),
                        subject: call.identity().subject().to_owned(),
                        has_deadline: call.deadline().is_some() && call.remaining().is_some(),
                        request_id: call
                            .context()
                            .and_then(|c| c.entry("request-id"))
                            .map(str::to_owned),
                    });
                    if call.method() == "explode" {
                        return Err(Refusal::permission_denied("nobody may explode"));
                    }
                    Ok(())
                })
                .with_interceptor(Quota {
                    left: AtomicU32::new(3),
                })
                .with_interceptor(move |_: &InterceptedCall<'_>| {
                    later.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                })
        })
        .await;
        let client = server.client_for(via).await;

        // refused before the handler runs: it would have panicked
        match client.explode().await {
            Err(RpcError::Remote { code, message }) => {
                assert_eq!(code, ErrorCode::PermissionDenied, "{via:?}");
                assert_eq!(message, "nobody may explode");
            }
            other => panic!("{via:?}: expected PermissionDenied, got {other:?}"),
        }
        assert_eq!(
            after_refusal.load(Ordering::SeqCst),
            0,
            "{via:?}: the first refusal ends the chain"
        );

        for n in 0..3 {
            assert_eq!(client.add(n, 1, 1).await.unwrap(), n + 2);
        }
        let refused = client.add(1, 1, 1).await.unwrap_err();
        assert!(
            matches!(
                &refused,
                RpcError::Remote {
                    code: ErrorCode::QuotaExceeded,
                    ..
                }
            ),
            "{via:?}: {refused:?}"
        );
        assert!(refused.is_retriable());

        let traced = client
            .with_call_timeout(Some(Duration::from_secs(30)))
            .with_context(CallContext::new().with_entry("request-id", "r-9"));
        assert_eq!(traced.whoami().await.unwrap(), "anonymous");

        let sightings = sightings.lock().unwrap().clone();
        let methods: Vec<_> = sightings.iter().map(|s| s.method).collect();
        assert_eq!(
            methods,
            ["explode", "add", "add", "add", "add", "whoami"],
            "{via:?}"
        );
        let last = sightings.last().unwrap();
        assert_eq!(
            last,
            &Sighting {
                service: "Kitchen",
                method: "whoami",
                subject: "anonymous".into(),
                has_deadline: true,
                request_id: Some("r-9".into()),
            }
        );
        assert!(sightings[..5]
            .iter()
            .all(|s| !s.has_deadline && s.request_id.is_none()));
        // refused calls do not count as served; the three admitted additions and whoami do
        assert_eq!(after_refusal.load(Ordering::SeqCst), 4, "{via:?}");
    }
}

//! rustls client configuration: system roots, a CA bundle, or (explicitly) none.

use std::sync::{Arc, Mutex};

use hardlight_core::handshake::alpn;

use rustls::{
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    client::Resumption,
    crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider},
    pki_types::{pem::PemObject, CertificateDer, ServerName, UnixTime},
    DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use crate::{
    config::Trust,
    error::{ConnectError, TlsConfigError},
};

/// Servers whose TLS session tickets a config keeps (a few tickets of a few hundred
/// bytes each per server).
const TLS_SESSIONS: usize = 32;

/// The QUIC TLS configuration of a [`ClientConfig`](crate::ClientConfig), built on first
/// use and shared by its clones (changing its trust, version or 0-RTT setting starts a
/// new one). rustls resumes a session, and sends 0-RTT data, only with the certificate
/// verifier that accepted the server when it issued the ticket: one configuration must
/// serve every connection of a client.
#[derive(Debug, Clone, Default)]
pub(crate) struct QuicTls(Arc<Mutex<Option<Arc<rustls::ClientConfig>>>>);

impl QuicTls {
    /// The configuration for `config`: tickets kept across connections, and early data
    /// if `config` allows 0-RTT.
    pub(crate) fn get(
        &self,
        config: &crate::ClientConfig,
    ) -> Result<Arc<rustls::ClientConfig>, ConnectError> {
        let mut built = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(tls) = &*built {
            return Ok(Arc::clone(tls));
        }
        let mut tls = client_config(&config.trust, alpn(config.protocol_version))?;
        tls.resumption = Resumption::in_memory_sessions(TLS_SESSIONS);
        tls.enable_early_data = config.zero_rtt;
        let tls = Arc::new(tls);
        *built = Some(Arc::clone(&tls));
        Ok(tls)
    }
}

/// A TLS 1.3 client configuration offering ALPN `alpn`.
pub(crate) fn client_config(
    trust: &Trust,
    alpn: Vec<u8>,
) -> Result<rustls::ClientConfig, ConnectError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsConfigError::Rustls(Arc::new(e)))?;
    let mut config = match trust {
        Trust::InsecureAcceptAny => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth(),
        Trust::CaPem(pem) => builder
            .with_root_certificates(ca_roots(pem)?)
            .with_no_client_auth(),
        Trust::SystemRoots => builder
            .with_root_certificates(system_roots()?)
            .with_no_client_auth(),
    };
    config.alpn_protocols = vec![alpn];
    Ok(config)
}

fn ca_roots(pem: &[u8]) -> Result<RootCertStore, ConnectError> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| TlsConfigError::CaPem(Arc::new(e)))?;
        roots
            .add(cert)
            .map_err(|e| TlsConfigError::CaCertificate(Arc::new(e)))?;
    }
    if roots.is_empty() {
        return Err(TlsConfigError::NoCaCertificate.into());
    }
    Ok(roots)
}

fn system_roots() -> Result<RootCertStore, ConnectError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(TlsConfigError::NoSystemRoots {
            errors: found.errors.len(),
        }
        .into());
    }
    Ok(roots)
}

/// Accepts any certificate but still checks that the server holds its key.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

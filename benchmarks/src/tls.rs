//! One certificate for every system in a run, so that every client verifies its server the
//! same way (no system skips verification).

use std::{path::PathBuf, sync::Arc};

use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};

/// A self-signed certificate for `localhost`, written to a directory the server processes
/// read it from.
#[derive(Debug, Clone)]
pub struct Certificate {
    /// PEM of the certificate.
    pub cert_pem: String,
    /// PEM of its private key.
    pub key_pem: String,
}

impl Certificate {
    /// Generates a new certificate.
    pub fn generate() -> Self {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
            .expect("generate a certificate");
        Self {
            cert_pem: cert.cert.pem(),
            key_pem: cert.key_pair.serialize_pem(),
        }
    }

    /// Writes it to a fresh directory and returns the directory.
    pub fn write(&self) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hardlight-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the certificate directory");
        std::fs::write(dir.join("cert.pem"), &self.cert_pem).expect("write cert.pem");
        std::fs::write(dir.join("key.pem"), &self.key_pem).expect("write key.pem");
        dir
    }

    /// Reads what [`write`](Self::write) wrote.
    pub fn read(dir: &std::path::Path) -> Self {
        Self {
            cert_pem: std::fs::read_to_string(dir.join("cert.pem")).expect("read cert.pem"),
            key_pem: std::fs::read_to_string(dir.join("key.pem")).expect("read key.pem"),
        }
    }

    /// A TLS 1.3 server configuration presenting this certificate.
    pub fn server_config(&self, alpn: &[u8]) -> rustls::ServerConfig {
        let chain = CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("certificate PEM");
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).expect("key PEM");
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("TLS 1.3")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("server certificate");
        config.alpn_protocols = vec![alpn.to_vec()];
        config
    }

    /// A TLS 1.3 client configuration trusting only this certificate.
    pub fn client_config(&self, alpn: &[u8]) -> rustls::ClientConfig {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(self.cert_pem.as_bytes()) {
            roots
                .add(cert.expect("certificate PEM"))
                .expect("trust anchor");
        }
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("TLS 1.3")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![alpn.to_vec()];
        config
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

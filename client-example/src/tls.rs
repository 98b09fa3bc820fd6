//! TLS for `wss://`: the Mozilla root store (`webpki-roots`) for AWS IoT's
//! certificates, or a given CA certificate for the local stack's `--tls` mode.

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

#[derive(Debug, Clone, Default)]
pub enum TrustRoots {
    /// The public web PKI, which AWS IoT's ATS endpoints chain to.
    #[default]
    WebPki,
    /// Trust only these PEM certificates (e.g. the local stack's CA).
    Pem(Vec<u8>),
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("the CA certificate file holds no PEM certificate")]
    NoCertificate,
    #[error("the CA certificate is not usable: {0}")]
    Certificate(String),
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

pub fn client_config(roots: &TrustRoots) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut store = rustls::RootCertStore::empty();
    match roots {
        TrustRoots::WebPki => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        TrustRoots::Pem(pem) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
                .collect::<Result<_, _>>()
                .map_err(|e| TlsError::Certificate(e.to_string()))?;
            if certs.is_empty() {
                return Err(TlsError::NoCertificate);
            }
            for cert in certs {
                store.add(cert).map_err(|e| TlsError::Certificate(e.to_string()))?;
            }
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(store)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

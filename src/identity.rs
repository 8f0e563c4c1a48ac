//! `Identity`: a client certificate chain and its private key, for servers that require
//! client certificates (mutual TLS).

use std::fmt;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::{Error, ErrorKind};

/// A client certificate chain and its private key, presented to servers that ask for one
/// (mutual TLS). Given to a pool with
/// [`PoolConfigBuilder::identity`](crate::PoolConfigBuilder::identity); every client of the
/// pool presents it.
///
/// `Debug` shows how many certificates the chain holds, never the key.
///
/// # Examples
///
/// ```
/// use http_sentinel::{ClientPool, Identity, PoolConfig};
///
/// # let key = rcgen::KeyPair::generate().unwrap();
/// # let cert = rcgen::CertificateParams::new(vec!["client.test".to_owned()])
/// #     .unwrap()
/// #     .self_signed(&key)
/// #     .unwrap();
/// # let (chain_pem, key_pem) = (cert.pem(), key.serialize_pem());
/// // `chain_pem`: the client certificate first, then its intermediates; `key_pem` its key
/// // (PKCS#8, PKCS#1 or SEC1), e.g. read from files.
/// let identity = Identity::from_pem_parts(chain_pem.as_bytes(), key_pem.as_bytes())?;
/// let pool = ClientPool::new(PoolConfig::builder().identity(identity).build())?;
///
/// // One PEM holding both works too, as reqwest's `Identity::from_pem` takes it.
/// let both = format!("{chain_pem}{key_pem}");
/// let identity = Identity::from_pem(both.as_bytes())?;
/// assert!(!format!("{identity:?}").contains("PRIVATE"));
/// # drop(pool);
/// # Ok::<(), http_sentinel::Error>(())
/// ```
#[derive(Clone)]
pub struct Identity {
    chain: Arc<[CertificateDer<'static>]>,
    key: Arc<PrivateKeyDer<'static>>,
}

impl Identity {
    /// An identity from one PEM buffer holding the certificate chain (leaf first) and the
    /// private key, in any order.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidConfig`] when the buffer holds no certificate, no private key, or
    /// PEM that cannot be parsed.
    pub fn from_pem(pem: &[u8]) -> Result<Identity, Error> {
        Identity::from_pem_parts(pem, pem)
    }

    /// An identity from a PEM certificate chain (leaf first, then intermediates) and a PEM
    /// private key (PKCS#8, PKCS#1 or SEC1).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidConfig`] when the chain holds no certificate, the key buffer no
    /// private key, or either cannot be parsed.
    pub fn from_pem_parts(chain: &[u8], key: &[u8]) -> Result<Identity, Error> {
        let chain = CertificateDer::pem_slice_iter(chain)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(&format!("client certificate: {e}")))?;
        if chain.is_empty() {
            return Err(invalid("client certificate: no CERTIFICATE in the PEM"));
        }
        // The parser's error never quotes the key's bytes.
        let key =
            PrivateKeyDer::from_pem_slice(key).map_err(|e| invalid(&format!("client key: {e}")))?;
        Ok(Identity {
            chain: chain.into(),
            key: Arc::new(key),
        })
    }

    pub(crate) fn chain(&self) -> Vec<CertificateDer<'static>> {
        self.chain.to_vec()
    }

    pub(crate) fn key(&self) -> PrivateKeyDer<'static> {
        self.key.clone_key()
    }
}

fn invalid(why: &str) -> Error {
    Error::new(ErrorKind::InvalidConfig(why.to_owned()))
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("certificates", &self.chain.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_and_missing_parts_are_invalid_config() {
        for (chain, key) in [
            (&b"not pem"[..], &b"not pem"[..]),
            (
                b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
                b"",
            ),
        ] {
            let err = Identity::from_pem_parts(chain, key).unwrap_err();
            assert!(matches!(err.kind(), ErrorKind::InvalidConfig(_)), "{err}");
        }
    }
}

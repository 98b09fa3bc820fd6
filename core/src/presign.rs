//! SigV4 presigned URLs for MQTT over WebSocket on the AWS IoT device gateway.
//!
//! `aws-sigv4` does the signing; this module only picks the settings IoT needs
//! (<https://docs.aws.amazon.com/iot/latest/developerguide/protocols.html#mqtt-ws>):
//! service `iotdevicegateway`, signature in the query string, an empty body, and the
//! session token left out of the signature and appended after it
//! (`SessionTokenMode::Exclude`) — IoT answers 403 when the token is signed.
//!
//! The canonical host keeps a port only when it is not the scheme's default, which
//! is what WebSocket clients send as `Host`, so [`IotEndpoint`] drops `:443` from
//! `wss://` (and `:80` from `ws://`) before signing.
//!
//! Pure: the signing time is a parameter. IoT ignores `X-Amz-Expires` beyond roughly
//! 15 minutes, so callers should presign right before each connect.

use std::fmt;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    SessionTokenMode, SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;

/// The SigV4 service name of the IoT device gateway.
pub const SERVICE: &str = "iotdevicegateway";
/// The lifetime written into `X-Amz-Expires`; IoT does not honour more than this.
pub const DEFAULT_EXPIRES: Duration = Duration::from_secs(900);

/// An IoT data endpoint: `wss://<prefix>-ats.iot.<region>.amazonaws.com`, or a
/// local `ws://127.0.0.1:<port>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IotEndpoint {
    secure: bool,
    /// `host` or `host:port`, the port only when it is not the scheme's default.
    authority: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error("{0:?} is not a host name or a ws://, wss://, http:// or https:// URL")]
    Malformed(String),
    #[error("{0:?} has a path, query or credentials; give only scheme://host[:port]")]
    Extra(String),
}

impl IotEndpoint {
    /// Accepts a bare host (`xxxx-ats.iot.us-east-1.amazonaws.com`, as printed by
    /// `aws iot describe-endpoint`), or a URL with scheme `wss`/`https` (TLS) or
    /// `ws`/`http` (plain, for the local stack).
    pub fn parse(value: &str) -> Result<Self, EndpointError> {
        let value = value.trim();
        let with_scheme = if value.contains("://") {
            value.to_owned()
        } else {
            format!("wss://{value}")
        };
        let url = url::Url::parse(&with_scheme).map_err(|_| EndpointError::Malformed(value.to_owned()))?;
        let secure = match url.scheme() {
            "wss" | "https" => true,
            "ws" | "http" => false,
            _ => return Err(EndpointError::Malformed(value.to_owned())),
        };
        if !matches!(url.path(), "" | "/")
            || url.query().is_some()
            || url.fragment().is_some()
            || !url.username().is_empty()
            || url.password().is_some()
        {
            return Err(EndpointError::Extra(value.to_owned()));
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| EndpointError::Malformed(value.to_owned()))?;
        let default_port = if secure { 443 } else { 80 };
        let authority = match url.port() {
            Some(port) if port != default_port => format!("{host}:{port}"),
            _ => host.to_owned(),
        };
        Ok(Self { secure, authority })
    }

    /// The gateway of the local stack on `addr`, with or without TLS.
    pub fn local(addr: std::net::SocketAddr, tls: bool) -> Self {
        Self {
            secure: tls,
            authority: addr.to_string(),
        }
    }

    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// `host[:port]`, exactly as signed and as sent in the `Host` header.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// `wss://host[:port]` (or `ws://` for a plain local endpoint).
    pub fn websocket_base(&self) -> String {
        format!("{}://{}", if self.secure { "wss" } else { "ws" }, self.authority)
    }

    /// `https://host[:port]` (or `http://`): the data-plane HTTPS publish API.
    pub fn https_base(&self) -> String {
        format!("{}://{}", if self.secure { "https" } else { "http" }, self.authority)
    }
}

impl fmt::Display for IotEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.websocket_base())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PresignError {
    #[error("signing failed: {0}")]
    Signing(String),
}

/// Presigns `GET /mqtt` on `endpoint` for `region` with `credentials` at `now`.
/// Returns the full `wss://…/mqtt?X-Amz-…` URL, session token last.
pub fn presign(
    endpoint: &IotEndpoint,
    region: &str,
    credentials: &Credentials,
    now: SystemTime,
    expires_in: Duration,
) -> Result<String, PresignError> {
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.session_token_mode = SessionTokenMode::Exclude;
    settings.expires_in = Some(expires_in);
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SERVICE)
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| PresignError::Signing(e.to_string()))?
        .into();
    // Sign as http(s) so the signer applies the right default port; the URL we hand
    // out has the WebSocket scheme on the same authority.
    let signed_url = format!("{}/mqtt", endpoint.https_base());
    let signable = SignableRequest::new("GET", &signed_url, std::iter::empty(), SignableBody::Bytes(b""))
        .map_err(|e| PresignError::Signing(e.to_string()))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| PresignError::Signing(e.to_string()))?
        .into_parts();
    let mut request = http::Request::builder()
        .uri(&signed_url)
        .body(())
        .map_err(|e| PresignError::Signing(e.to_string()))?;
    instructions.apply_to_request_http1x(&mut request);
    let query = request.uri().query().unwrap_or_default();
    Ok(format!("{}/mqtt?{query}", endpoint.websocket_base()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(token: Option<&str>) -> Credentials {
        Credentials::new(
            "ASIAEXAMPLEKEY",
            "secret/key+value",
            token.map(str::to_owned),
            None,
            "test",
        )
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn endpoints_parse_from_hosts_and_urls() {
        let aws = IotEndpoint::parse("abc-ats.iot.us-east-1.amazonaws.com").unwrap();
        assert_eq!(aws.websocket_base(), "wss://abc-ats.iot.us-east-1.amazonaws.com");
        assert_eq!(
            IotEndpoint::parse("wss://h.example:443").unwrap().authority(),
            "h.example"
        );
        assert_eq!(
            IotEndpoint::parse("https://h.example/").unwrap().websocket_base(),
            "wss://h.example"
        );
        let local = IotEndpoint::parse("ws://127.0.0.1:8443").unwrap();
        assert_eq!(local.websocket_base(), "ws://127.0.0.1:8443");
        assert_eq!(local.https_base(), "http://127.0.0.1:8443");
        assert!(!local.is_secure());
    }

    #[test]
    fn endpoints_with_paths_queries_or_odd_schemes_are_refused() {
        for bad in ["", "ftp://h", "wss://h/mqtt", "wss://h?x=1", "wss://u:p@h", "wss://"] {
            assert!(IotEndpoint::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_url_carries_the_iot_signing_parameters_and_the_token_last() {
        let endpoint = IotEndpoint::parse("abc-ats.iot.eu-west-1.amazonaws.com").unwrap();
        let url = presign(
            &endpoint,
            "eu-west-1",
            &creds(Some("tok/en+=")),
            at(1_700_000_000),
            DEFAULT_EXPIRES,
        )
        .unwrap();
        assert!(url.starts_with("wss://abc-ats.iot.eu-west-1.amazonaws.com/mqtt?X-Amz-Algorithm=AWS4-HMAC-SHA256&"));
        assert!(
            url.contains("X-Amz-Credential=ASIAEXAMPLEKEY%2F20231114%2Feu-west-1%2Fiotdevicegateway%2Faws4_request")
        );
        assert!(url.contains("X-Amz-Date=20231114T221320Z"));
        assert!(url.contains("X-Amz-Expires=900"));
        assert!(url.contains("X-Amz-SignedHeaders=host"));
        let (before, token) = url.rsplit_once("&X-Amz-Security-Token=").unwrap();
        assert_eq!(token, "tok%2Fen%2B%3D");
        assert!(before.rsplit('&').next().unwrap().starts_with("X-Amz-Signature="));
    }

    #[test]
    fn the_session_token_does_not_change_the_signature() {
        let endpoint = IotEndpoint::parse("h.example").unwrap();
        let signature = |url: String| {
            url.split('&')
                .find(|p| p.starts_with("X-Amz-Signature="))
                .unwrap()
                .to_owned()
        };
        let with = presign(&endpoint, "us-east-1", &creds(Some("token")), at(0), DEFAULT_EXPIRES).unwrap();
        let without = presign(&endpoint, "us-east-1", &creds(None), at(0), DEFAULT_EXPIRES).unwrap();
        assert_eq!(signature(with), signature(without.clone()));
        assert!(!without.contains("Security-Token"));
    }

    #[test]
    fn presigning_is_deterministic_for_a_fixed_time() {
        let endpoint = IotEndpoint::parse("ws://127.0.0.1:8443").unwrap();
        let a = presign(
            &endpoint,
            "us-east-1",
            &creds(Some("t")),
            at(1_000_000),
            DEFAULT_EXPIRES,
        )
        .unwrap();
        let b = presign(
            &endpoint,
            "us-east-1",
            &creds(Some("t")),
            at(1_000_000),
            DEFAULT_EXPIRES,
        )
        .unwrap();
        assert_eq!(a, b);
        assert!(a.starts_with("ws://127.0.0.1:8443/mqtt?"));
    }
}

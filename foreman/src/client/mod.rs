//! Connections to crews, shared by the CLI and the dashboard: one
//! `CrewClient` per crew, over mutual TLS 1.3 with our own connector (so we
//! choose the verifier and see the crew's certificate).
//!
//! - `tls.rs`: the TLS client config and the crew certificate check.
//! - `attach.rs`: opening an attach stream to a job (`foreman attach`,
//!   `run`, `logs` and the dashboard all open it there).

pub mod attach;
pub mod tls;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::ServerName;
use tasker_proto::v1::crew_client::CrewClient;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::config::{Config, CrewEntry};

pub use self::tls::SeenCert;

/// How long a connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One crew, connected or not.
#[derive(Clone, Debug)]
pub struct Crew {
    pub name: String,
    pub addr: String,
    /// Where its entry came from (the configuration, or discovery).
    pub source: crate::config::Source,
    pub client: CrewClient<Channel>,
    pub seen: Arc<Mutex<SeenCert>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{0}")]
    Tls(#[from] tls::TlsError),
    #[error("crew {name} ({addr}): {why}")]
    Unreachable { name: String, addr: String, why: String },
}

/// `host:port`, `[v6]:port` or `v6addr:port`... as (host, port).
pub fn split_addr(addr: &str) -> Option<(String, u16)> {
    if let Some(rest) = addr.strip_prefix('[') {
        let (host, port) = rest.split_once("]:")?;
        return Some((host.to_owned(), port.parse().ok()?));
    }
    let (host, port) = addr.rsplit_once(':')?;
    if host.is_empty() || host.contains(':') {
        return None;
    }
    Some((host.to_owned(), port.parse().ok()?))
}

/// A lazy channel to one crew: the TCP + TLS connection is made on first
/// use and re-made after a failure (tonic's channel reconnects).
pub fn crew(config: &Config, entry: &CrewEntry) -> Result<Crew, ConnectError> {
    crew_as(&identity(config)?, entry)
}

/// Our CA, certificate and key, as the config names them.
pub fn identity(config: &Config) -> Result<tls::Identity, ConnectError> {
    Ok(tls::Identity::load(&config.ca(), &config.cert(), &config.key())?)
}

/// A client of one crew, as `who`.
pub fn crew_as(who: &tls::Identity, entry: &CrewEntry) -> Result<Crew, ConnectError> {
    let seen = Arc::new(Mutex::new(SeenCert::default()));
    let crew_named = entry.source.discovered().then(|| entry.name.clone());
    let tls = who.client_config(Arc::clone(&seen), crew_named)?;
    let unreachable = |why: String| ConnectError::Unreachable {
        name: entry.name.clone(),
        addr: entry.addr.clone(),
        why,
    };
    let (host, port) = split_addr(&entry.addr).ok_or_else(|| unreachable("not HOST:PORT".into()))?;
    // An address discovery resolved: dialed as is, the crew's name checked.
    let (host, port, tls_name) = match entry.dial {
        Some(at) => (at.ip().to_string(), at.port(), entry.name.clone()),
        None => (host.clone(), port, host),
    };
    let server_name = ServerName::try_from(tls_name).map_err(|e| unreachable(e.to_string()))?;
    let connector = tower::service_fn(move |_: Uri| {
        let (tls, host, server_name) = (Arc::clone(&tls), host.clone(), server_name.clone());
        async move {
            let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            // Without it, Nagle and delayed ACKs stall each call ~40 ms.
            tcp.set_nodelay(true)?;
            let stream = tokio_rustls::TlsConnector::from(tls)
                .connect(server_name, tcp)
                .await?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
        }
    });
    let channel = Endpoint::from_static("http://crew")
        .connect_timeout(CONNECT_TIMEOUT)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(20))
        .keep_alive_while_idle(true)
        .connect_with_connector_lazy(connector);
    Ok(Crew {
        name: entry.name.clone(),
        addr: entry.addr.clone(),
        source: entry.source.clone(),
        client: CrewClient::new(channel)
            .max_decoding_message_size(16 << 20)
            .max_encoding_message_size(4 << 20),
        seen,
    })
}

/// Every configured crew.
pub fn crews(config: &Config) -> Result<Vec<Crew>, ConnectError> {
    if config.crews.is_empty() {
        return Ok(Vec::new());
    }
    let who = identity(config)?;
    config.crews.iter().map(|e| crew_as(&who, e)).collect()
}

/// Words for a failed call: the crew's own message, or for a transport
/// failure the causes that say something ("Connection refused", "invalid
/// peer certificate: UnknownIssuer"), without the layers' generic words.
pub fn explain(status: &tonic::Status) -> String {
    use std::error::Error as _;
    use tonic::Code;
    if status.code() == Code::Unimplemented {
        // An older crew, which does not have this call yet.
        return "this crew does not know that call: it runs an older release than this foreman; \
                upgrade the crew"
            .to_owned();
    }
    if !matches!(status.code(), Code::Unavailable | Code::Unknown | Code::Cancelled) {
        return status.message().to_owned();
    }
    const GENERIC: [&str; 6] = [
        "transport error",
        "error trying to connect",
        "client error (Connect)",
        "tcp connect error",
        "operation was canceled",
        "connection error",
    ];
    let mut parts: Vec<String> = vec![status.message().to_owned()];
    let mut source = status.source();
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    let mut kept: Vec<String> = Vec::new();
    for p in parts {
        let p = p.trim().to_owned();
        if p.is_empty() || GENERIC.iter().any(|g| p.eq_ignore_ascii_case(g)) {
            continue;
        }
        // An outer layer often repeats its cause: keep the longer text.
        if kept.iter().any(|k| k.contains(&p)) {
            continue;
        }
        kept.retain(|k| !p.contains(k.as_str()));
        kept.push(p);
    }
    if kept.is_empty() {
        return status.message().to_owned();
    }
    let text = kept.join(": ");
    // TLS and HTTP/2 failures, in words that say what is wrong and what to
    // do; the library's own words stay in brackets for whoever debugs it.
    // A connection the crew closed, however the library says it.
    const CLOSED: &str = "the crew closed the connection: it may refuse your certificate (a TLS 1.3 crew says why only in its log) or be shutting down";
    const IN_WORDS: [(&str, &str); 12] = [
        (
            "CertificateRevoked",
            "the crew refuses your certificate: it is revoked (ask for a new one)",
        ),
        (
            "CertificateExpired",
            "the crew refuses your certificate: it has expired (ask for a new one)",
        ),
        (
            "fatal alert: UnknownCA",
            "the crew does not know the CA that signed your certificate: you and the crew use different PKIs (ask its admin for a certificate of its CA)",
        ),
        (
            "fatal alert: BadCertificate",
            "the crew refuses your certificate (not one of its CA's, or not a client's): ask its admin for one",
        ),
        (
            "fatal alert: DecryptError",
            "the crew refuses your certificate: its signature does not verify (a certificate of another CA under the same name?)",
        ),
        (
            "UnknownIssuer",
            "the crew's certificate is not signed by your CA (ca.crt in your certs directory): you and the crew use different PKIs",
        ),
        (
            "BadSignature",
            "the crew's certificate is not signed by your CA (ca.crt in your certs directory): you and the crew use different PKIs",
        ),
        (
            "Expired",
            "the crew's certificate has expired (its admin must renew it), or this machine's clock is wrong",
        ),
        (
            "close_notify",
            "the crew closed the connection during the handshake: it may refuse your certificate (see the crew's log) or be shutting down",
        ),
        ("connection closed", CLOSED),
        ("broken pipe", CLOSED),
        ("Connection reset", CLOSED),
    ];
    match IN_WORDS.iter().find(|(alert, _)| text.contains(alert)) {
        Some((_, words)) => format!("{words} [{text}]"),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crews_alerts_about_our_certificate_are_put_in_words() {
        let revoked = tonic::Status::unavailable("received fatal alert: CertificateRevoked");
        assert_eq!(
            explain(&revoked),
            "the crew refuses your certificate: it is revoked (ask for a new one) \
             [received fatal alert: CertificateRevoked]"
        );
        let foreign = tonic::Status::unavailable("invalid peer certificate: BadSignature");
        assert!(
            explain(&foreign).starts_with("the crew's certificate is not signed by your CA"),
            "{}",
            explain(&foreign)
        );
        let h2 = tonic::Status::unknown(
            "h2 protocol error: peer closed connection without sending TLS close_notify",
        );
        assert!(
            explain(&h2).starts_with("the crew closed the connection"),
            "{}",
            explain(&h2)
        );
        let closed = tonic::Status::cancelled("operation was canceled");
        assert_eq!(
            explain(&closed),
            "operation was canceled",
            "no cause, nothing to add"
        );
        let other = tonic::Status::unavailable("Connection refused (os error 111)");
        assert_eq!(explain(&other), "Connection refused (os error 111)");
        // What an older crew answers for a call it does not have: no text.
        let older = tonic::Status::unimplemented("");
        assert!(explain(&older).contains("older release"), "{}", explain(&older));
    }

    #[test]
    fn addresses_split_into_host_and_port() {
        assert_eq!(split_addr("alpha:7443"), Some(("alpha".into(), 7443)));
        assert_eq!(split_addr("127.0.0.1:1"), Some(("127.0.0.1".into(), 1)));
        assert_eq!(split_addr("[::1]:7443"), Some(("::1".into(), 7443)));
        assert_eq!(split_addr("::1:7443"), None);
        assert_eq!(split_addr("alpha"), None);
        assert_eq!(split_addr(":7443"), None);
        assert_eq!(split_addr("a:x"), None);
    }
}

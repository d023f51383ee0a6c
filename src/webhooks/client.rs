//! The outgoing HTTP client of webhook delivery, safe by default against server-side request
//! forgery: a destination must be `https` (unless `TASKLIGHT_WEBHOOK_ALLOW_HTTP`), and no
//! address it resolves to may be loopback, private, link-local (cloud metadata at
//! 169.254.169.254 included), carrier-grade NAT, multicast, reserved or unspecified, unless
//! `TASKLIGHT_WEBHOOK_ALLOWED_NETS` lists it. The check runs when a subscription is saved and
//! again on every delivery, inside the client's DNS resolver, so the addresses checked are the
//! addresses connected to (a name that changes its answer between the two cannot slip through).
//! Redirects are not followed; connect and total timeouts apply; at most [`MAX_ANSWER_BYTES`] of
//! an answer are read.
//!
//! reqwest is the client (Sentry's transport already brings it into the binary, with rustls):
//! it gives the timeouts, the redirect policy and the resolver hook this needs. tower-http would
//! add nothing here; see the README, "Middleware choice".

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::IpBlock;
use crate::config::WebhookConfig;

/// The most of an answer's body that is read (the rest is dropped with the connection).
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// The longest a destination's name may take to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Which addresses a delivery may go to.
#[derive(Debug, Clone)]
pub struct AddressGuard {
    allowed: Vec<IpBlock>,
    allow_http: bool,
}

impl AddressGuard {
    /// The guard of `config`.
    pub fn new(config: &WebhookConfig) -> Self {
        Self {
            allowed: config.allowed_nets.clone(),
            allow_http: config.allow_http,
        }
    }

    /// Whether a delivery may connect to `ip`.
    pub fn permits(&self, ip: IpAddr) -> bool {
        public(ip) || self.allowed.iter().any(|block| block.contains(ip))
    }

    /// Checks a destination URL: scheme, no credentials, and every address its host resolves
    /// to. The error says why, for the API's answer.
    pub async fn check(&self, url: &url::Url) -> Result<(), String> {
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            "http" => return Err("must use https (plain http is not accepted here)".into()),
            other => return Err(format!("must be an https URL, not `{other}:`")),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not carry a user name or password".into());
        }
        if url.fragment().is_some() {
            return Err("must not have a fragment (#...)".into());
        }
        let host = url.host_str().ok_or("must have a host")?;
        let port = url.port_or_known_default().unwrap_or(443);
        let addresses = self.resolve(host, port).await?;
        if addresses.is_empty() {
            return Err(format!("`{host}` resolves to no address"));
        }
        Ok(())
    }

    /// The addresses of `host` a delivery may connect to; an error if there are none, or if any
    /// is refused (a name that resolves to both a public and a private address is refused).
    async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let addresses: Vec<SocketAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port)))
                .await
                .map_err(|_| {
                    format!(
                        "`{host}` did not resolve within {} s",
                        RESOLVE_TIMEOUT.as_secs()
                    )
                })?
                .map_err(|err| format!("`{host}` cannot be resolved: {err}"))?
                .collect(),
        };
        if let Some(refused) = addresses.iter().find(|a| !self.permits(a.ip())) {
            return Err(format!(
                "`{host}` resolves to {}, a loopback, private, link-local or reserved address \
                 (deliveries go only to public addresses, or to TASKLIGHT_WEBHOOK_ALLOWED_NETS)",
                refused.ip()
            ));
        }
        Ok(addresses)
    }
}

/// Whether `ip` is a public unicast address.
fn public(ip: IpAddr) -> bool {
    match crate::config::ip_block::canonical(ip) {
        IpAddr::V4(v4) => public_v4(v4),
        IpAddr::V6(v6) => public_v6(v6),
    }
}

fn public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0                                   // "this network"
        || a == 10                             // private
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT (Alibaba's metadata too)
        || a == 127                            // loopback
        || (a == 169 && b == 254)              // link-local: cloud metadata
        || (a == 172 && (16..32).contains(&b)) // private
        || (a == 192 && b == 0 && c == 0)      // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2)      // documentation
        || (a == 192 && b == 168)              // private
        || (a == 198 && (b == 18 || b == 19))  // benchmarking
        || (a == 198 && b == 51 && c == 100)   // documentation
        || (a == 203 && b == 0 && c == 113)    // documentation
        || a >= 224) // multicast, reserved, broadcast
}

fn public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    // NAT64 (64:ff9b::/96) carries an IPv4 address: judge that.
    if ip.segments()[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [.., a, b] = ip.segments();
        return public_v4(Ipv4Addr::from((u32::from(a) << 16) | u32::from(b)));
    }
    !(ip.is_unspecified()
        || ip.is_loopback()
        || (first & 0xfe00) == 0xfc00 // unique local (AWS metadata fd00:ec2::254 too)
        || (first & 0xffc0) == 0xfe80 // link-local
        || (first & 0xff00) == 0xff00 // multicast
        || first == 0x2001 && ip.segments()[1] == 0x0db8 // documentation
        || first == 0) // other reserved ::/16 forms
}

/// The resolver of the client: resolves, then keeps only what the guard permits, and fails
/// if it refuses any answer.
struct GuardedResolver(Arc<AddressGuard>);

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let guard = self.0.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addresses = guard.resolve(&host, 0).await.map_err(
                |refused| -> Box<dyn std::error::Error + Send + Sync> { refused.into() },
            )?;
            let addresses: reqwest::dns::Addrs = Box::new(addresses.into_iter());
            Ok(addresses)
        })
    }
}

/// What one delivery attempt got.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The status code, if an answer came.
    pub status: Option<u16>,
    /// Why it failed, if it did (never the answer's body).
    pub error: Option<String>,
    /// From the start of the request to the end of the answer (or the failure).
    pub latency: Duration,
}

impl Answer {
    /// A 2xx answer.
    pub fn succeeded(&self) -> bool {
        matches!(self.status, Some(200..=299))
    }
}

/// The client.
pub struct Outgoing {
    client: reqwest::Client,
    guard: Arc<AddressGuard>,
}

impl Outgoing {
    /// A client with `config`'s timeouts and guard.
    pub fn new(config: &WebhookConfig) -> anyhow::Result<Self> {
        // The process's TLS provider is ring (as for sqlx, SMTP and Sentry); `tasklight serve`
        // installs it first, and a server started by a test may not have.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let guard = Arc::new(AddressGuard::new(config));
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.connect_timeout)
            .timeout(config.timeout)
            .dns_resolver(Arc::new(GuardedResolver(guard.clone())))
            .user_agent(concat!("Tasklight-Webhooks/", env!("CARGO_PKG_VERSION")))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self { client, guard })
    }

    /// The guard, for checking URLs when subscriptions are saved.
    pub fn guard(&self) -> &AddressGuard {
        &self.guard
    }

    /// POSTs `body` as JSON with `headers` to `url`.
    pub async fn post(
        &self,
        url: &str,
        headers: &[(&'static str, String)],
        body: String,
    ) -> Answer {
        let started = Instant::now();
        let failed = |error: String| Answer {
            status: None,
            error: Some(error),
            latency: started.elapsed(),
        };
        let parsed = match url::Url::parse(url) {
            Ok(parsed) => parsed,
            Err(err) => return failed(format!("the URL is not valid: {err}")),
        };
        // A literal address never reaches the resolver: check it here.
        if let Some(host) = parsed.host_str()
            && let Ok(ip) = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
            && !self.guard.permits(ip)
        {
            return failed(format!(
                "{ip} is a loopback, private, link-local or reserved address"
            ));
        }
        if parsed.scheme() == "http" && !self.guard.allow_http {
            return failed("plain http is not accepted".into());
        }
        let mut request = self
            .client
            .post(parsed)
            .header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let mut response = match request.body(body).send().await {
            Ok(response) => response,
            Err(err) => return failed(describe(&err)),
        };
        let status = response.status().as_u16();
        let mut read = 0usize;
        let error = loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    read += chunk.len();
                    if read >= MAX_ANSWER_BYTES {
                        break None;
                    }
                }
                Ok(None) => break None,
                Err(err) => break Some(describe(&err)),
            }
        };
        Answer {
            status: Some(status),
            error: error.or_else(|| {
                (!(200..300).contains(&status)).then(|| format!("the endpoint answered {status}"))
            }),
            latency: started.elapsed(),
        }
    }
}

/// A transport error in words, with its cause chain (the URL is left out: it may carry a
/// token in its query).
fn describe(err: &reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not connect"
    } else if err.is_redirect() {
        "redirect"
    } else {
        "request failed"
    };
    let mut text = kind.to_owned();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text.chars().take(500).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(allowed: &[&str]) -> AddressGuard {
        AddressGuard {
            allowed: allowed.iter().map(|b| b.parse().unwrap()).collect(),
            allow_http: false,
        }
    }

    #[test]
    fn private_loopback_link_local_and_metadata_addresses_are_refused() {
        let g = guard(&[]);
        for refused in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.100.100.200",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00:ec2::254",
            "fc00::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2001:db8::1",
            "198.18.0.1",
        ] {
            assert!(
                !g.permits(refused.parse().unwrap()),
                "{refused} must be refused"
            );
        }
        for public in [
            "93.184.216.34",
            "1.1.1.1",
            "172.32.0.1",
            "2606:4700:4700::1111",
            "64:ff9b::5db8:d822",
        ] {
            assert!(g.permits(public.parse().unwrap()), "{public} is public");
        }
    }

    #[test]
    fn the_allow_list_opens_only_its_blocks() {
        let g = guard(&["127.0.0.0/8"]);
        assert!(g.permits("127.0.0.1".parse().unwrap()));
        assert!(!g.permits("10.0.0.1".parse().unwrap()));
    }

    #[tokio::test]
    async fn urls_are_checked_for_scheme_credentials_and_resolved_addresses() {
        let g = guard(&[]);
        let check = |url: &str| {
            let g = g.clone();
            let url = url::Url::parse(url).unwrap();
            async move { g.check(&url).await }
        };
        assert!(
            check("http://93.184.216.34/")
                .await
                .unwrap_err()
                .contains("https")
        );
        assert!(
            check("ftp://example.com/")
                .await
                .unwrap_err()
                .contains("https")
        );
        assert!(
            check("https://user:pw@93.184.216.34/")
                .await
                .unwrap_err()
                .contains("password")
        );
        assert!(
            check("https://127.0.0.1/hook")
                .await
                .unwrap_err()
                .contains("127.0.0.1")
        );
        assert!(
            check("https://[::1]:8443/")
                .await
                .unwrap_err()
                .contains("::1")
        );
        // A name that resolves to loopback is refused after resolution.
        assert!(
            check("https://localhost/hook")
                .await
                .unwrap_err()
                .contains("resolves to")
        );
        assert!(check("https://93.184.216.34/hook").await.is_ok());
    }
}

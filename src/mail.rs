//! Outgoing mail over SMTP (lettre on tokio, rustls with ring): the email-verification link.
//!
//! A message is sent on a task of its own after the write that made its token has committed, so
//! a slow or failing mail server never delays or fails the request, and never loses the account.
//! Neither the link nor its token is ever written to a log line, a span or an error: failures
//! are logged with the user id and the mail server's error only.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use uuid::Uuid;

use crate::config::SmtpConfig;

/// How long one SMTP conversation may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

/// Sends mail, or (without `SMTP_URL`) sends nothing.
pub struct Mailer {
    smtp: Option<Smtp>,
}

struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    public_url: String,
}

impl Mailer {
    /// A mailer for the configured SMTP server, or one that sends nothing.
    pub fn new(config: Option<&SmtpConfig>) -> anyhow::Result<Arc<Self>> {
        let smtp = match config {
            Some(config) => Some(Smtp {
                transport: transport(config)?,
                from: config
                    .from
                    .parse()
                    .map_err(|_| anyhow::anyhow!("SMTP_FROM: is not a mailbox"))?,
                public_url: config.public_url.clone(),
            }),
            None => None,
        };
        Ok(Arc::new(Self { smtp }))
    }

    /// Whether mail is sent at all.
    pub fn enabled(&self) -> bool {
        self.smtp.is_some()
    }

    /// Sends the verification link for `token` to `to` on a task of its own; the outcome is
    /// logged with `user_id` (never the link). Without SMTP it does nothing.
    pub fn send_verification(self: &Arc<Self>, user_id: Uuid, to: String, token: String) {
        if self.smtp.is_none() {
            return;
        }
        let mailer = self.clone();
        tokio::spawn(async move {
            match mailer.deliver_verification(&to, &token).await {
                Ok(()) => tracing::info!(%user_id, "verification mail sent"),
                Err(err) => tracing::warn!(
                    %user_id,
                    error = %err,
                    "the verification mail could not be sent; the user can ask for another \
                     (POST /api/v1/auth/resend-verification)"
                ),
            }
        });
    }

    async fn deliver_verification(&self, to: &str, token: &str) -> anyhow::Result<()> {
        let Some(smtp) = &self.smtp else {
            return Ok(());
        };
        let link = format!("{}/verify-email?token={token}", smtp.public_url);
        let body = format!(
            "Hello,\r\n\r\n\
             please confirm that this address belongs to your Tasklight account by opening\r\n\
             this link (it works once, for a limited time):\r\n\r\n\
             {link}\r\n\r\n\
             Until the address is confirmed, project invitations sent to it stay hidden.\r\n\
             If you did not create a Tasklight account, ignore this message.\r\n"
        );
        // A Message-ID in the sender's domain: mail without one is often taken for spam.
        let message_id = format!("<{}@{}>", Uuid::new_v4(), smtp.from.email.domain());
        let message = Message::builder()
            .message_id(Some(message_id))
            .from(smtp.from.clone())
            .to(to.parse().context("the recipient is not a mailbox")?)
            .subject("Confirm your email address for Tasklight")
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .context("building the message")?;
        smtp.transport
            .send(message)
            .await
            .context("the SMTP server refused or failed")?;
        Ok(())
    }
}

/// The transport for `SMTP_URL`: `smtps://` is TLS from the first byte (port 465 by default);
/// `smtp://` upgrades with STARTTLS whenever the server offers it (port 587 by default;
/// `?tls=required` refuses a server that does not offer it).
fn transport(config: &SmtpConfig) -> anyhow::Result<AsyncSmtpTransport<Tokio1Executor>> {
    let mut url = config.url.clone();
    // lettre reads a bare `smtp://` as "never TLS" (and port 25): ask for opportunistic TLS.
    if url.scheme() == "smtp" && !url.query_pairs().any(|(k, _)| k == "tls") {
        url.query_pairs_mut().append_pair("tls", "opportunistic");
    }
    Ok(AsyncSmtpTransport::<Tokio1Executor>::from_url(url.as_str())
        .context("SMTP_URL: cannot be used")?
        .timeout(Some(SMTP_TIMEOUT))
        .build())
}

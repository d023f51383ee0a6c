//! The settings of outgoing mail (`SMTP_URL`, `SMTP_FROM`, `TASKLIGHT_PUBLIC_URL`) and of the
//! links and invitations it is about; each error names its variable.

use super::ConfigError;

/// Outgoing mail, on when `SMTP_URL` is set.
#[derive(Clone)]
pub struct SmtpConfig {
    /// `smtp://[user:password@]host[:port]` (STARTTLS when the server offers it; add
    /// `?tls=required` to refuse a server that does not) or `smtps://...` (TLS from the first
    /// byte). Holds a password: never logged.
    pub url: url::Url,
    /// `SMTP_FROM`: the sender, `Tasklight <no-reply@example.com>` or a bare address.
    pub from: String,
    /// `TASKLIGHT_PUBLIC_URL`: where the verification link points (`<url>/verify-email?token=`),
    /// without a trailing slash.
    pub public_url: String,
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("scheme", &self.url.scheme())
            .field("host", &self.url.host_str())
            .field("port", &self.url.port())
            .field("from", &self.from)
            .field("public_url", &self.public_url)
            .finish()
    }
}

/// Reads `SMTP_URL`, `SMTP_FROM` and `TASKLIGHT_PUBLIC_URL` (the last two are required once the
/// first is set; without `SMTP_URL` no mail is sent and they are ignored).
pub(super) fn smtp(
    url: Option<String>,
    from: Option<String>,
    public_url: Option<String>,
) -> Result<Option<SmtpConfig>, ConfigError> {
    let Some(raw) = url else {
        return Ok(None);
    };
    let problem = |variable, problem: String| ConfigError { variable, problem };
    let url = url::Url::parse(raw.trim())
        .ok()
        .filter(|u| matches!(u.scheme(), "smtp" | "smtps"))
        .filter(|u| u.host_str().is_some_and(|h| !h.is_empty()))
        .ok_or_else(|| {
            problem(
                "SMTP_URL",
                "must be smtp://[user:password@]host[:port] or smtps://... (the value is not \
                 repeated here: it may hold a password)"
                    .into(),
            )
        })?;
    if let Some((key, _)) = url.query_pairs().find(|(k, _)| k != "tls") {
        return Err(problem(
            "SMTP_URL",
            format!(
                "unknown query parameter `{key}`; only `tls=required` or `tls=opportunistic` \
                 is accepted"
            ),
        ));
    }
    if let Some((_, tls)) = url.query_pairs().find(|(k, _)| k == "tls")
        && !matches!(tls.as_ref(), "required" | "opportunistic")
    {
        return Err(problem(
            "SMTP_URL",
            format!("`tls={tls}` is not `tls=required` or `tls=opportunistic`"),
        ));
    }
    let from = from.ok_or_else(|| {
        problem(
            "SMTP_FROM",
            "is required with SMTP_URL: the sender of the verification mail, such as \
             `Tasklight <no-reply@example.com>`"
                .into(),
        )
    })?;
    if from.trim().parse::<lettre::message::Mailbox>().is_err() {
        return Err(problem(
            "SMTP_FROM",
            format!(
                "`{from}` is not a mailbox: write `no-reply@example.com` or \
                 `Tasklight <no-reply@example.com>`"
            ),
        ));
    }
    let public_url = public_url.ok_or_else(|| {
        problem(
            "TASKLIGHT_PUBLIC_URL",
            "is required with SMTP_URL: the verification link points at it, such as \
             https://tasks.example.com"
                .into(),
        )
    })?;
    let valid = url::Url::parse(public_url.trim()).is_ok_and(|u| {
        matches!(u.scheme(), "http" | "https")
            && u.host_str().is_some()
            && u.query().is_none()
            && u.fragment().is_none()
    });
    if !valid {
        return Err(problem(
            "TASKLIGHT_PUBLIC_URL",
            format!(
                "must be an http(s) URL without query or fragment, such as \
                 https://tasks.example.com, got `{public_url}`"
            ),
        ));
    }
    Ok(Some(SmtpConfig {
        url,
        from: from.trim().to_owned(),
        public_url: public_url.trim().trim_end_matches('/').to_owned(),
    }))
}

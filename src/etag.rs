//! ETags derived from a resource's version, and the `If-Match` / `If-None-Match` comparisons of
//! RFC 9110 (strong for `If-Match`, weak for `If-None-Match`).

/// The strong ETag of a resource version: `"v3"`.
pub fn for_version(version: i32) -> String {
    format!("\"v{version}\"")
}

/// `If-Match`: true when the header is `*` or lists `current` (weak tags never match).
pub fn if_match(header: &str, current: &str) -> bool {
    header.trim() == "*" || tags(header).any(|tag| tag == current)
}

/// Refuses (412) a write whose `If-Match` (when sent) does not name version `version`.
pub fn require_match(if_match: Option<&str>, version: i32) -> Result<(), crate::error::AppError> {
    match if_match {
        Some(header) if !self::if_match(header, &for_version(version)) => {
            Err(crate::error::AppError::PreconditionFailed)
        }
        _ => Ok(()),
    }
}

/// `If-None-Match`: true when the header is `*` or lists `current`, ignoring `W/` on either side.
pub fn if_none_match(header: &str, current: &str) -> bool {
    let current = current.strip_prefix("W/").unwrap_or(current);
    header.trim() == "*" || tags(header).any(|tag| tag.strip_prefix("W/").unwrap_or(tag) == current)
}

/// The entity tags in a comma-separated list (a quoted tag cannot contain a comma or quote).
fn tags(header: &str) -> impl Iterator<Item = &str> {
    header
        .split(',')
        .map(str::trim)
        .filter(|tag| !tag.is_empty())
}

/// The version named by an `If-Match` value, when it is exactly one of our strong ETags: the
/// form [`for_version`] writes, so `"v+5"` and `"v05"` are not versions.
pub fn version_of(header: &str) -> Option<i32> {
    let header = header.trim();
    let version = header
        .strip_prefix("\"v")?
        .strip_suffix('"')?
        .parse()
        .ok()?;
    (for_version(version) == header).then_some(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_uses_strong_comparison() {
        let current = for_version(3);
        assert!(if_match("\"v3\"", &current));
        assert!(if_match("\"v1\", \"v3\"", &current));
        assert!(if_match("*", &current));
        assert!(!if_match("W/\"v3\"", &current));
        assert!(!if_match("\"v2\"", &current));
        assert!(!if_match("", &current));
    }

    #[test]
    fn if_none_match_uses_weak_comparison() {
        let current = for_version(7);
        assert!(if_none_match("W/\"v7\"", &current));
        assert!(if_none_match("\"v7\"", &current));
        assert!(if_none_match("*", &current));
        assert!(!if_none_match("\"v6\"", &current));
    }

    #[test]
    fn version_is_read_back_from_our_tags_only() {
        assert_eq!(version_of("\"v12\""), Some(12));
        assert_eq!(version_of("W/\"v12\""), None);
        assert_eq!(version_of("\"12\""), None);
        assert_eq!(version_of("\"v99999999999\""), None);
        assert_eq!(version_of(" \"v-3\" "), Some(-3));
        for other in ["\"v+5\"", "\"v05\"", "\"v 5\"", "\"v-0\"", "\"v\""] {
            assert_eq!(version_of(other), None, "{other}");
        }
    }
}

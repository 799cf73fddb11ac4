//! Secrets and the redaction of connection URLs.
//!
//! A password lives in [`Secret`], which prints as `***` and cannot be
//! serialised, so no log line, error or report can carry it by accident.
//! Connection URLs are shown only through [`redact_url`].

use std::fmt;

/// A password or key. `Debug` and `Display` print `***`; there is no
/// `Serialize` on purpose.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The plain value, for the one place that needs it: the connect call.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Replaces the password of a `scheme://user:password@host/…` URL with `***`
/// and drops query parameters that may carry one (`password=`, `sslpassword=`).
/// A string that does not parse as a URL is shown only by its scheme.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            let pairs: Vec<(String, String)> = u
                .query_pairs()
                .map(|(k, v)| {
                    let secret = k.to_ascii_lowercase().contains("pass");
                    (k.into_owned(), if secret { "***".to_string() } else { v.into_owned() })
                })
                .collect();
            if !pairs.is_empty() {
                u.query_pairs_mut().clear().extend_pairs(pairs);
            }
            u.to_string()
        }
        Err(_) => match raw.split_once("://") {
            Some((scheme, _)) => format!("{scheme}://…"),
            None => "<unparsable url>".to_string(),
        },
    }
}

/// Removes every occurrence of the secret from a message (a driver error may
/// echo what it was given).
pub fn scrub(message: &str, secret: Option<&Secret>) -> String {
    match secret {
        Some(s) if !s.0.is_empty() => message.replace(&s.0, "***"),
        _ => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_is_redacted_from_urls() {
        let r = redact_url("mysql://hlx:s3cr%40t@10.1.2.3:3306/haikou?ssl-mode=disabled");
        assert!(!r.contains("s3cr"), "{r}");
        assert!(r.contains("hlx:***@10.1.2.3"), "{r}");
        let r = redact_url("postgres://h@db/p?password=topsecret&application_name=x");
        assert!(!r.contains("topsecret"), "{r}");
        assert!(r.contains("application_name=x"), "{r}");
    }

    #[test]
    fn secret_never_formats() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "*** Secret(***)");
        assert_eq!(scrub("login hunter2 failed", Some(&s)), "login *** failed");
    }
}

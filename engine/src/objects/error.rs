//! What can go wrong talking to the object store, sorted by what the caller does about it:
//! retry later (unreachable: the server answers 503), fix the configuration (denied),
//! treat as absent (not found), or report (other).
//!
//! `object_store` reports failures as its own error enum with the HTTP details nested in
//! sources; this sorts them once, here, so no caller inspects HTTP statuses or error
//! texts. Messages name the endpoint, the bucket and the key, never a credential.

use std::error::Error as StdError;

use object_store::client::{HttpError, HttpErrorKind};

/// A failed object store operation.
#[derive(Debug, thiserror::Error)]
pub enum ObjectsError {
    /// Nothing answered in time: the connection was refused or reset, or timed out, or the
    /// store kept answering 5xx (no quorum) until the retries ran out. Worth retrying later.
    #[error("object store {endpoint} is unreachable ({op} {key}): {reason}")]
    Unreachable {
        /// The endpoint tried.
        endpoint: String,
        /// The operation (`PUT`, `GET`, ...).
        op: &'static str,
        /// The object key, or the prefix for a listing.
        key: String,
        /// What happened, as the client saw it.
        reason: String,
    },
    /// The store refused the credentials or their permissions on the bucket.
    #[error(
        "object store {endpoint} denied {op} {key} in bucket {bucket}: the access key is wrong \
         or may not do this ({reason})"
    )]
    Denied {
        /// The endpoint that refused.
        endpoint: String,
        /// The bucket.
        bucket: String,
        /// The operation.
        op: &'static str,
        /// The object key, or the prefix for a listing.
        key: String,
        /// The store's own words (no credentials are in them).
        reason: String,
    },
    /// No such object (or no such bucket: `key` is then empty, or the listing's prefix).
    #[error("{}", not_found(bucket, key))]
    NotFound {
        /// The bucket.
        bucket: String,
        /// The object key.
        key: String,
    },
    /// Anything else, with the store's message.
    #[error("object store {endpoint}: {op} {key} failed: {message}")]
    Other {
        /// The endpoint.
        endpoint: String,
        /// The operation.
        op: &'static str,
        /// The object key, or the prefix for a listing.
        key: String,
        /// The store's message.
        message: String,
    },
}

impl ObjectsError {
    /// Whether the store could not be reached (the server's 503 with `Retry-After`).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ObjectsError::Unreachable { .. })
    }

    /// Whether the object (or bucket) does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ObjectsError::NotFound { .. })
    }
}

fn not_found(bucket: &str, key: &str) -> String {
    if key.is_empty() {
        format!("bucket {bucket} not found")
    } else {
        format!("object {key} not found in bucket {bucket}")
    }
}

/// What an operation was about, to word its error.
pub(crate) struct Op<'a> {
    pub endpoint: &'a str,
    pub bucket: &'a str,
    pub op: &'static str,
    pub key: &'a str,
}

impl Op<'_> {
    /// Sorts an `object_store` error into an [`ObjectsError`].
    pub(crate) fn error(&self, e: object_store::Error) -> ObjectsError {
        let key = self.key.to_string();
        match e {
            object_store::Error::NotFound { .. } => ObjectsError::NotFound {
                bucket: self.bucket.to_string(),
                key,
            },
            object_store::Error::PermissionDenied { source, .. }
            | object_store::Error::Unauthenticated { source, .. } => self.denied(chain(&*source)),
            other => {
                let text = chain(&other);
                match status_in(&other) {
                    Some(401 | 403) => self.denied(text),
                    Some(404) => ObjectsError::NotFound {
                        bucket: self.bucket.to_string(),
                        key,
                    },
                    Some(500 | 502 | 503 | 504) => self.unreachable(text),
                    _ if lost_connection(&other) => self.unreachable(text),
                    _ => self.other(text),
                }
            }
        }
    }

    /// An error the module itself found (a short read, a bad key), in the same shape.
    pub(crate) fn other(&self, message: impl Into<String>) -> ObjectsError {
        ObjectsError::Other {
            endpoint: self.endpoint.to_string(),
            op: self.op,
            key: self.shown_key(),
            message: message.into(),
        }
    }

    fn denied(&self, reason: String) -> ObjectsError {
        ObjectsError::Denied {
            endpoint: self.endpoint.to_string(),
            bucket: self.bucket.to_string(),
            op: self.op,
            key: self.shown_key(),
            reason,
        }
    }

    fn unreachable(&self, reason: String) -> ObjectsError {
        ObjectsError::Unreachable {
            endpoint: self.endpoint.to_string(),
            op: self.op,
            key: self.shown_key(),
            reason,
        }
    }

    /// The key in a message: a listing of the whole bucket shows as `/`.
    fn shown_key(&self) -> String {
        if self.key.is_empty() {
            "/".to_string()
        } else {
            self.key.to_string()
        }
    }
}

/// The error and its sources, one `: ` apart, without repeating a source whose text the
/// error's own already includes; an S3 error document in it is cut down to its code and
/// message.
fn chain(e: &(dyn StdError + 'static)) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        let t = s.to_string();
        if !text.contains(&t) {
            text.push_str(": ");
            text.push_str(&t);
        }
        next = s.source();
    }
    tidy_s3_error(&text)
}

/// `...: <?xml ...><Error><Code>C</Code><Message>M</Message>...` → `...: C: M`.
fn tidy_s3_error(text: &str) -> String {
    let Some(start) = text.find("<?xml").or_else(|| text.find("<Error>")) else {
        return text.to_string();
    };
    let tag = |name: &str| {
        let open = format!("<{name}>");
        let close = format!("</{name}>");
        let from = text[start..].find(&open)? + start + open.len();
        let to = text[from..].find(&close)? + from;
        Some(text[from..to].to_string())
    };
    let mut out = text[..start].trim_end().to_string();
    match (tag("Code"), tag("Message")) {
        (Some(c), Some(m)) => out.push_str(&format!(" {c}: {m}")),
        (Some(c), None) => out.push_str(&format!(" {c}")),
        _ => return text.to_string(),
    }
    out
}

/// Whether the request never got an answer: refused, reset, timed out, cut short.
fn lost_connection(e: &(dyn StdError + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(s) = next {
        if let Some(h) = s.downcast_ref::<HttpError>() {
            return matches!(
                h.kind(),
                HttpErrorKind::Connect
                    | HttpErrorKind::Request
                    | HttpErrorKind::Timeout
                    | HttpErrorKind::Interrupted
            );
        }
        next = s.source();
    }
    false
}

/// The HTTP status an error carries, if any. `object_store` keeps it typed only on its own
/// private retry error and maps it to a variant for some requests (reads, deletes) but not
/// others (listings, multipart steps), so the status is read from the text that error
/// always prints: "status code: NNN".
fn status_in(e: &(dyn StdError + 'static)) -> Option<u16> {
    const MARK: &str = "status code: ";
    let mut next = Some(e);
    while let Some(s) = next {
        let t = s.to_string();
        if let Some(i) = t.find(MARK) {
            let code = t.get(i + MARK.len()..i + MARK.len() + 3)?;
            return code.parse().ok();
        }
        next = s.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_error_documents_are_cut_to_code_and_message() {
        let t = "Error performing GET http://h/b/k in 2ms - Server returned non-2xx status \
                 code: 403 Forbidden: <?xml version=\"1.0\" encoding=\"UTF-8\"?><Error>\
                 <Code>AccessDenied</Code><Message>Forbidden: Invalid signature</Message>\
                 <Resource>/b/k</Resource></Error>";
        assert_eq!(
            tidy_s3_error(t),
            "Error performing GET http://h/b/k in 2ms - Server returned non-2xx status code: \
             403 Forbidden: AccessDenied: Forbidden: Invalid signature"
        );
        assert_eq!(tidy_s3_error("plain"), "plain");
        assert_eq!(tidy_s3_error("x <Error>junk"), "x <Error>junk");
    }

    #[test]
    fn a_missing_bucket_says_so() {
        let e = ObjectsError::NotFound {
            bucket: "b".into(),
            key: String::new(),
        };
        assert_eq!(e.to_string(), "bucket b not found");
        let e = ObjectsError::NotFound {
            bucket: "b".into(),
            key: "k/1".into(),
        };
        assert_eq!(e.to_string(), "object k/1 not found in bucket b");
    }
}

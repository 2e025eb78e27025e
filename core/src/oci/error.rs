//! The one table from OCI error codes to the wire (spec digest §2.3): status, code string,
//! default message, and the error JSON body.

/// An OCI error code. `status()` and `as_str()` are the only place codes meet statuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// code-1
    BlobUnknown,
    /// code-2
    BlobUploadInvalid,
    /// code-3
    BlobUploadUnknown,
    /// code-4
    DigestInvalid,
    /// code-5
    ManifestBlobUnknown,
    /// code-6
    ManifestInvalid,
    /// code-7
    ManifestUnknown,
    /// code-8
    NameInvalid,
    /// code-9
    NameUnknown,
    /// code-10
    SizeInvalid,
    /// code-11
    Unauthorized,
    /// code-12
    Denied,
    /// code-13
    Unsupported,
    /// code-14
    TooManyRequests,
    /// [D] extra: out-of-order chunk.
    RangeInvalid,
    /// [D] extra: bad `n`.
    PaginationNumberInvalid,
    /// [D] extra (legacy): tag fails §1.2.
    TagInvalid,
    /// [D] extra: server-side failure.
    Unknown,
    /// [D] extra: temporarily unavailable.
    Unavailable,
}

impl ErrorCode {
    /// The status [D] registers for the code, which clients expect.
    pub fn status(self) -> u16 {
        use ErrorCode::*;
        match self {
            BlobUnknown => 404,
            BlobUploadInvalid => 400,
            BlobUploadUnknown => 404,
            DigestInvalid => 400,
            ManifestBlobUnknown => 400,
            ManifestInvalid => 400,
            ManifestUnknown => 404,
            NameInvalid => 400,
            NameUnknown => 404,
            SizeInvalid => 400,
            Unauthorized => 401,
            Denied => 403,
            Unsupported => 405,
            TooManyRequests => 429,
            RangeInvalid => 416,
            PaginationNumberInvalid => 400,
            TagInvalid => 400,
            Unknown => 500,
            Unavailable => 503,
        }
    }

    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            BlobUnknown => "BLOB_UNKNOWN",
            BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            DigestInvalid => "DIGEST_INVALID",
            ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            ManifestInvalid => "MANIFEST_INVALID",
            ManifestUnknown => "MANIFEST_UNKNOWN",
            NameInvalid => "NAME_INVALID",
            NameUnknown => "NAME_UNKNOWN",
            SizeInvalid => "SIZE_INVALID",
            Unauthorized => "UNAUTHORIZED",
            Denied => "DENIED",
            Unsupported => "UNSUPPORTED",
            TooManyRequests => "TOOMANYREQUESTS",
            RangeInvalid => "RANGE_INVALID",
            PaginationNumberInvalid => "PAGINATION_NUMBER_INVALID",
            TagInvalid => "TAG_INVALID",
            Unknown => "UNKNOWN",
            Unavailable => "UNAVAILABLE",
        }
    }

    pub fn message(self) -> &'static str {
        use ErrorCode::*;
        match self {
            BlobUnknown => "blob unknown to registry",
            BlobUploadInvalid => "blob upload invalid",
            BlobUploadUnknown => "blob upload unknown to registry",
            DigestInvalid => "provided digest did not match uploaded content",
            ManifestBlobUnknown => "manifest references a manifest or blob unknown to registry",
            ManifestInvalid => "manifest invalid",
            ManifestUnknown => "manifest unknown to registry",
            NameInvalid => "invalid repository name",
            NameUnknown => "repository name not known to registry",
            SizeInvalid => "provided length did not match content length",
            Unauthorized => "authentication required",
            Denied => "requested access to the resource is denied",
            Unsupported => "the operation is unsupported",
            TooManyRequests => "too many requests",
            RangeInvalid => "invalid content range",
            PaginationNumberInvalid => "invalid number of results requested",
            TagInvalid => "manifest tag did not match URI",
            Unknown => "unknown error",
            Unavailable => "service unavailable",
        }
    }
}

/// One entry of an error body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorEntry {
    pub code: ErrorCode,
    /// A string detail (never an object: the spec's Go type declares `detail` a string).
    pub detail: Option<String>,
}

/// `{"errors":[{"code","message","detail"?}, ...]}`.
pub fn error_body(entries: &[ErrorEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(96 * entries.len().max(1));
    out.extend_from_slice(b"{\"errors\":[");
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"code\":\"");
        out.extend_from_slice(e.code.as_str().as_bytes());
        out.extend_from_slice(b"\",\"message\":");
        json_string(&mut out, e.code.message());
        if let Some(d) = &e.detail {
            out.extend_from_slice(b",\"detail\":");
            json_string(&mut out, d);
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    out
}

/// `{"errors":[{"code","message"}]}` with the caller's message (an authorization refusal
/// explains itself: "token lacks write_packages for acme/web"). An empty message falls back
/// to the code's own.
pub fn message_body(code: ErrorCode, message: &str) -> Vec<u8> {
    let message = if message.is_empty() {
        code.message()
    } else {
        message
    };
    let mut out = Vec::with_capacity(48 + message.len());
    out.extend_from_slice(b"{\"errors\":[{\"code\":\"");
    out.extend_from_slice(code.as_str().as_bytes());
    out.extend_from_slice(b"\",\"message\":");
    json_string(&mut out, message);
    out.extend_from_slice(b"}]}");
    out
}

/// Appends `s` as a JSON string literal.
pub fn json_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 => {
                let _ = std::io::Write::write_fmt(out, format_args!("\\u{:04x}", c as u32));
            }
            c => {
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_is_spec_shaped_json_with_string_detail() {
        let body = error_body(&[
            ErrorEntry {
                code: ErrorCode::ManifestBlobUnknown,
                detail: Some("sha256:\"x\"".into()),
            },
            ErrorEntry {
                code: ErrorCode::NameInvalid,
                detail: None,
            },
        ]);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["errors"][0]["code"], "MANIFEST_BLOB_UNKNOWN");
        assert_eq!(v["errors"][0]["detail"], "sha256:\"x\"");
        assert_eq!(v["errors"][1]["code"], "NAME_INVALID");
        assert!(v["errors"][1].get("detail").is_none());
    }

    #[test]
    fn statuses_follow_the_registered_table() {
        // spec digest §2.3 table, [D] column.
        let rows = [
            (ErrorCode::BlobUnknown, 404, "BLOB_UNKNOWN"),
            (ErrorCode::BlobUploadUnknown, 404, "BLOB_UPLOAD_UNKNOWN"),
            (ErrorCode::DigestInvalid, 400, "DIGEST_INVALID"),
            (ErrorCode::ManifestBlobUnknown, 400, "MANIFEST_BLOB_UNKNOWN"),
            (ErrorCode::ManifestInvalid, 400, "MANIFEST_INVALID"),
            (ErrorCode::ManifestUnknown, 404, "MANIFEST_UNKNOWN"),
            (ErrorCode::NameInvalid, 400, "NAME_INVALID"),
            (ErrorCode::NameUnknown, 404, "NAME_UNKNOWN"),
            (ErrorCode::SizeInvalid, 400, "SIZE_INVALID"),
            (ErrorCode::Unauthorized, 401, "UNAUTHORIZED"),
            (ErrorCode::Denied, 403, "DENIED"),
            (ErrorCode::Unsupported, 405, "UNSUPPORTED"),
            (ErrorCode::TooManyRequests, 429, "TOOMANYREQUESTS"),
            (ErrorCode::RangeInvalid, 416, "RANGE_INVALID"),
            (
                ErrorCode::PaginationNumberInvalid,
                400,
                "PAGINATION_NUMBER_INVALID",
            ),
            (ErrorCode::Unknown, 500, "UNKNOWN"),
        ];
        for (c, s, n) in rows {
            assert_eq!((c.status(), c.as_str()), (s, n));
        }
    }
}

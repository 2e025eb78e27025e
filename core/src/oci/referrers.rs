//! The referrers response (spec digest §7): an image index listing the manifests whose
//! `subject` is the queried digest, optionally filtered by `artifactType`.

use super::error::json_string;
use super::manifest::OCI_INDEX;
use crate::need::Referrer;

/// Builds the index JSON. Returns the body and whether a filter was applied.
pub fn index(referrers: &[Referrer], artifact_type: Option<&str>) -> Vec<u8> {
    let mut out = Vec::with_capacity(96 + referrers.len() * 256);
    out.extend_from_slice(b"{\"schemaVersion\":2,\"mediaType\":\"");
    out.extend_from_slice(OCI_INDEX.as_bytes());
    out.extend_from_slice(b"\",\"manifests\":[");
    let mut first = true;
    for r in referrers {
        if artifact_type.is_some_and(|t| r.artifact_type.as_deref() != Some(t)) {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        out.extend_from_slice(b"{\"mediaType\":");
        json_string(&mut out, &r.media_type);
        out.extend_from_slice(b",\"digest\":\"");
        out.extend_from_slice(r.digest.to_string().as_bytes());
        out.extend_from_slice(b"\",\"size\":");
        out.extend_from_slice(r.size.to_string().as_bytes());
        if let Some(t) = &r.artifact_type {
            out.extend_from_slice(b",\"artifactType\":");
            json_string(&mut out, t);
        }
        if let Some(a) = &r.annotations {
            // Raw JSON object text validated when the manifest was pushed.
            out.extend_from_slice(b",\"annotations\":");
            out.extend_from_slice(a.as_bytes());
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::Digest;

    fn r(t: Option<&str>, ann: Option<&str>) -> Referrer {
        Referrer {
            media_type: super::super::manifest::OCI_MANIFEST.into(),
            digest: Digest::parse(
                "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
            )
            .unwrap(),
            size: 12,
            artifact_type: t.map(Into::into),
            annotations: ann.map(Into::into),
        }
    }

    #[test]
    fn index_lists_entries_with_own_annotations_and_filters_by_artifact_type() {
        let list = [
            r(Some("a/x"), Some(r#"{"k":"v"}"#)),
            r(Some("a/y"), None),
            r(None, None),
        ];
        let v: serde_json::Value = serde_json::from_slice(&index(&list, None)).unwrap();
        assert_eq!(v["mediaType"], OCI_INDEX);
        assert_eq!(v["manifests"].as_array().unwrap().len(), 3);
        assert_eq!(v["manifests"][0]["annotations"]["k"], "v");
        assert!(v["manifests"][2].get("artifactType").is_none());
        let v: serde_json::Value = serde_json::from_slice(&index(&list, Some("a/y"))).unwrap();
        assert_eq!(v["manifests"].as_array().unwrap().len(), 1);
        let v: serde_json::Value = serde_json::from_slice(&index(&[], None)).unwrap();
        assert_eq!(v["manifests"], serde_json::json!([]));
    }
}

//! Grammar tables: accepted and rejected names, tags, digests, ranges and content ranges,
//! each row citing the spec digest section it comes from.

use berth_core::oci::range::{answer, ContentRange, RangeAnswer};
use berth_core::oci::{Digest, DigestError, RepoName, Tag, UploadId};

#[test]
fn repository_names() {
    // §1.1: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*
    let rows: &[(&str, bool)] = &[
        ("a", true),
        ("library/ubuntu", true),
        ("org/registry/image/sub", true),
        ("a.b", true),
        ("a_b", true),
        ("a__b", true),
        ("a---b", true),
        ("a0/b1", true),
        ("", false),
        ("A", false),
        ("a___b", false),
        ("a..b", false),
        ("a._b", false),
        (".a", false),
        ("a.", false),
        ("-a", false),
        ("a-", false),
        ("a//b", false),
        ("/a", false),
        ("a/", false),
        ("a b", false),
        ("a:b", false),
        ("_catalog", false),
    ];
    for (s, ok) in rows {
        assert_eq!(RepoName::parse(s).is_some(), *ok, "{s:?}");
    }
    // §1.1: keep names below 256 characters.
    assert!(RepoName::parse(&"a".repeat(255)).is_some());
    assert!(RepoName::parse(&"a".repeat(256)).is_none());
}

#[test]
fn tags() {
    // §1.2: [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}
    let rows: &[(&str, bool)] = &[
        ("latest", true),
        ("v1.2.3", true),
        ("_x", true),
        ("A-b_c.d", true),
        ("sha256-abc", true),
        ("", false),
        (".INVALID_MANIFEST_NAME", false),
        ("-a", false),
        ("a:b", false),
        ("a/b", false),
        ("a+b", false),
    ];
    for (s, ok) in rows {
        assert_eq!(Tag::parse(s).is_some(), *ok, "{s:?}");
    }
    assert!(Tag::parse(&"a".repeat(128)).is_some());
    assert!(Tag::parse(&"a".repeat(129)).is_none());
}

#[test]
fn digests() {
    // §1.3: algorithm ":" encoded; sha256 = 64 lower-case hex, sha512 = 128.
    let h64 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let rows: Vec<(String, Result<(), DigestError>)> = vec![
        (format!("sha256:{h64}"), Ok(())),
        (format!("sha512:{}", "a".repeat(128)), Ok(())),
        (
            format!("sha256:{}", h64.to_uppercase()),
            Err(DigestError::Encoding),
        ),
        (format!("sha256:{}", &h64[1..]), Err(DigestError::Encoding)),
        (format!("sha512:{h64}"), Err(DigestError::Encoding)),
        ("sha256:totallywrong".into(), Err(DigestError::Encoding)),
        (format!("blake3:{h64}"), Err(DigestError::Unsupported)),
        (format!("sha256+b64u:{h64}"), Err(DigestError::Unsupported)),
        (format!("SHA256:{h64}"), Err(DigestError::Syntax)),
        (h64.into(), Err(DigestError::Syntax)),
        ("sha256:".into(), Err(DigestError::Syntax)),
        (":abc".into(), Err(DigestError::Syntax)),
        ("sha256:ab/cd".into(), Err(DigestError::Syntax)),
    ];
    for (s, want) in rows {
        assert_eq!(Digest::parse(&s).map(|_| ()), want, "{s}");
    }
    let d = Digest::parse(&format!("sha256:{h64}")).unwrap();
    assert_eq!(d.to_string(), format!("sha256:{h64}"));
    assert_eq!(d.hex(), h64);
}

#[test]
fn upload_ids() {
    // §1.4: opaque, [a-zA-Z0-9-_.=]+
    for (s, ok) in [
        ("up-1", true),
        ("a.b=c_D", true),
        ("", false),
        ("a/b", false),
        ("a%b", false),
    ] {
        assert_eq!(UploadId::parse(s).is_some(), ok, "{s:?}");
    }
    assert!(UploadId::parse(&"a".repeat(65)).is_none());
}

#[test]
fn blob_download_ranges() {
    // §4.3 and RFC 9110 §14.1.2, on a 2048-byte blob.
    let rows: &[(&str, RangeAnswer)] = &[
        ("bytes=0-0", RangeAnswer::Partial(0..1)),
        ("bytes=0-2047", RangeAnswer::Partial(0..2048)),
        ("bytes=2000-5000", RangeAnswer::Partial(2000..2048)),
        ("bytes=1024-", RangeAnswer::Partial(1024..2048)),
        ("bytes=-1", RangeAnswer::Partial(2047..2048)),
        ("bytes=5000-10000", RangeAnswer::Unsatisfiable),
        ("bytes=500-0", RangeAnswer::Unsatisfiable),
        // A header that does not parse is ignored (RFC 9110 §14.2): the whole blob.
        ("bytes=abc", RangeAnswer::Full),
        ("bytes=0-1,3-4", RangeAnswer::Full),
        ("pages=1-2", RangeAnswer::Full),
    ];
    for (h, want) in rows {
        assert_eq!(&answer(Some(h), 2048), want, "{h}");
    }
}

#[test]
fn upload_content_ranges() {
    // §1.4 / §5.4: <start>-<end>, inclusive, no unit.
    let rows: &[(&str, Option<(u64, u64)>)] = &[
        ("0-21", Some((0, 21))),
        ("22-41", Some((22, 41))),
        ("0-0", Some((0, 0))),
        ("1-0", None),
        ("0-", None),
        ("-5", None),
        ("a-b", None),
        ("0-1-2", None),
        ("", None),
    ];
    for (v, want) in rows {
        assert_eq!(
            ContentRange::parse(v).map(|c| (c.start, c.end)),
            *want,
            "{v}"
        );
    }
}

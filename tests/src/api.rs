//! The OCI calls tests share, done the plain way (spec §5, §6) and checked as they go, so a
//! test's setup fails at the step that broke rather than later in a confusing place.

use crate::content::{Blob, Image};
use crate::digest::digest_like;
use crate::http::Expect as _;
use crate::http::{Client, Request, Response};
use berth_client::oci;

impl Client {
    /// `POST /v2/<name>/blobs/uploads/` → 202; returns the upload location (path + query).
    #[track_caller]
    pub fn start_upload(&mut self, name: &str) -> String {
        self.oci(|c, h| oci::start_upload(c, h, name))
    }

    /// POST then PUT with the whole blob (monolithic, §5.6): 201 with matching headers.
    #[track_caller]
    pub fn push_blob(&mut self, name: &str, blob: &Blob) -> Response {
        self.push_bytes(name, &blob.digest, &blob.bytes)
    }

    /// As `push_blob`, for raw bytes under a given digest (sha256 or sha512).
    #[track_caller]
    pub fn push_bytes(&mut self, name: &str, digest: &str, bytes: &[u8]) -> Response {
        let r = self.oci(|c, h| oci::push_blob(c, h, name, digest, &[bytes]));
        r.location();
        r
    }

    /// `PUT /v2/<name>/manifests/<reference>` with the manifest's media type; expects 201.
    #[track_caller]
    pub fn put_manifest(&mut self, name: &str, reference: &str, m: &Blob) -> Response {
        let r = self.oci(|c, h| oci::put_manifest(c, h, name, reference, &m.media_type, &m.bytes));
        let want = digest_like(
            if reference.starts_with("sha512:") {
                reference
            } else {
                &m.digest
            },
            &m.bytes,
        );
        assert_eq!(
            r.header("Docker-Content-Digest"),
            Some(want.as_str()),
            "manifest PUT must name the digest of the bytes sent:\n{r:?}"
        );
        r
    }

    /// Pushes an image's blobs, then its manifest under `reference`.
    #[track_caller]
    pub fn push_image(&mut self, name: &str, img: &Image, reference: &str) -> Response {
        for b in img.blobs() {
            self.push_blob(name, b);
        }
        self.put_manifest(name, reference, &img.manifest)
    }

    /// GET a blob and require it to equal `want`.
    #[track_caller]
    pub fn assert_blob(&mut self, name: &str, want: &Blob) {
        let r = self
            .get(&format!("/v2/{name}/blobs/{}", want.digest))
            .expect(200);
        assert!(r.body == want.bytes, "blob {} bytes differ", want.digest);
        if let Some(d) = r.header("Docker-Content-Digest") {
            assert_eq!(d, want.digest);
        }
    }

    /// GET a manifest by `reference` and require the stored bytes and type.
    #[track_caller]
    pub fn assert_manifest(&mut self, name: &str, reference: &str, want: &Blob) {
        let r = self
            .send(
                Request::get(&format!("/v2/{name}/manifests/{reference}"))
                    .header("Accept", &want.media_type),
            )
            .expect(200);
        assert!(
            r.body == want.bytes,
            "manifest {reference} bytes differ from those pushed:\n{r:?}"
        );
        assert_eq!(r.header("Content-Type"), Some(want.media_type.as_str()));
        assert_eq!(
            r.header("Content-Length"),
            Some(want.bytes.len().to_string().as_str())
        );
        let digest = if reference.starts_with("sha512:") {
            reference.to_string()
        } else {
            want.digest.clone()
        };
        assert_eq!(
            r.header("Docker-Content-Digest"),
            Some(digest.as_str()),
            "manifest GET {reference}: Docker-Content-Digest:\n{r:?}"
        );
    }
}

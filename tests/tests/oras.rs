//! The Python ORAS client (PyPI `oras`, 0.2.x) against a private registry: it logs in,
//! pushes a file artifact with a write token and pulls it back with a read token, byte for
//! byte; a read token cannot push. Before a push it looks the blob up (HEAD) and gets a
//! token for `pull` only; the upload that follows must make it fetch a wider one.

use berth_tests::clients::Oras;
use berth_tests::Expect as _;
use berth_tests::{repo, Registry, ORG};

#[test]
fn oras_pushes_a_file_artifact_with_a_write_token_and_pulls_it_back_with_a_read_token() {
    let reg = Registry::start();
    let oras = Oras::new(&reg.scratch("oras"));
    let artifact: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    std::fs::write(oras.dir().join("artifact.bin"), &artifact).expect("write the artifact");
    let name = repo("oras/artifact");
    let reference = format!("{name}:v1");

    oras.cmd("push", &reg.host(), &reference, reg.token(), "artifact.bin")
        .run();
    reg.client()
        .get(&format!("/v2/{name}/manifests/v1"))
        .expect(200);

    let read = reg.admin().create_token(ORG, &["read_packages"], &[], None);
    let out = oras.dir().join("pulled");
    oras.cmd(
        "pull",
        &reg.host(),
        &reference,
        &read.token,
        out.to_str().expect("UTF-8 path"),
    )
    .run();
    let pulled = std::fs::read(out.join("artifact.bin")).expect("the pulled artifact");
    assert!(pulled == artifact, "the artifact changed on the way back");

    // A read token gets no further than its credential allows: the push fails, and the
    // registry holds no tag for it.
    let (display, o) = oras
        .cmd(
            "push",
            &reg.host(),
            &format!("{name}:denied"),
            &read.token,
            "artifact.bin",
        )
        .output();
    assert!(
        !o.status.success(),
        "`{display}` pushed with a read token\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    reg.client()
        .get(&format!("/v2/{name}/manifests/denied"))
        .expect(404);
}

//! podman (rootful, vfs, private storage) pulls, re-tags, pushes and pulls back.

use berth_tests::clients::Podman;
use berth_tests::content::Image;
use berth_tests::layout::Layout;
use berth_tests::Expect as _;
use berth_tests::Registry;

#[test]
fn podman_pulls_pushes_under_another_name_and_pulls_back_the_same_image() {
    let reg = Registry::start();
    let img = Image::random(3, 300_000);
    let src = reg.scratch("src");
    let mut l = Layout::create(&src);
    l.add_image(&img, Some("v1"));
    l.write_index();
    reg.skopeo_copy(
        &format!("oci:{}:v1", src.display()),
        &format!("docker://{}/e2e/tests/podman/src:v1", reg.host()),
        &[],
    );

    let host = reg.host();
    let podman = Podman::new(&reg.scratch("podman"));
    podman.login(&host, reg.token());
    let src_ref = format!("{host}/e2e/tests/podman/src:v1");
    let dst_ref = format!("{host}/e2e/tests/podman/dst:v2");
    podman
        .cmd()
        .args(["pull", "--tls-verify=false", &src_ref])
        .run();
    let id = podman
        .cmd()
        .args(["image", "inspect", "--format", "{{.Id}}", &src_ref])
        .run();
    // The image ID is the config digest: the config travelled unchanged.
    assert_eq!(
        id.trim(),
        &img.config.digest[7..],
        "podman image id vs pushed config digest"
    );
    let pulled_digest = podman
        .cmd()
        .args(["image", "inspect", "--format", "{{.Digest}}", &src_ref])
        .run();
    assert_eq!(
        pulled_digest.trim(),
        img.manifest.digest,
        "podman's recorded manifest digest"
    );

    podman.cmd().args(["tag", &src_ref, &dst_ref]).run();
    let digest_file = reg.scratch("podman-out").join("digest");
    podman
        .cmd()
        .args(["push", "--tls-verify=false", "--digestfile"])
        .arg(&digest_file)
        .arg(&dst_ref)
        .run();
    let pushed = std::fs::read_to_string(&digest_file).expect("podman wrote its digest file");

    // The registry serves the pushed manifest under that digest and tag.
    let mut c = reg.client();
    let h = c.head("/v2/e2e/tests/podman/dst/manifests/v2").expect(200);
    assert_eq!(
        h.header("Docker-Content-Digest"),
        Some(pushed.trim()),
        "{h:?}"
    );
    let m = c
        .get(&format!(
            "/v2/e2e/tests/podman/dst/manifests/{}",
            pushed.trim()
        ))
        .expect(200);
    assert_eq!(berth_tests::sha256_digest(&m.body), pushed.trim());

    podman
        .cmd()
        .args(["rmi", "--force", &src_ref, &dst_ref])
        .run();
    podman
        .cmd()
        .args(["pull", "--tls-verify=false", &dst_ref])
        .run();
    let id2 = podman
        .cmd()
        .args(["image", "inspect", "--format", "{{.Id}}", &dst_ref])
        .run();
    assert_eq!(id2.trim(), id.trim(), "image id after push and pull back");
    let d2 = podman
        .cmd()
        .args(["image", "inspect", "--format", "{{.Digest}}", &dst_ref])
        .run();
    assert_eq!(d2.trim(), pushed.trim());
}

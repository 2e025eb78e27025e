//! docker (a private dockerd, vfs) loads an image archive, pushes it, removes it and pulls
//! it back from the registry.

use berth_tests::clients::{skopeo_copy, Dockerd};
use berth_tests::content::Image;
use berth_tests::layout::Layout;
use berth_tests::Registry;

#[test]
fn docker_pushes_a_loaded_image_and_pulls_it_back_with_the_same_id() {
    let reg = Registry::start();
    let img = Image::random(3, 300_000);
    let src = reg.scratch("src");
    let mut l = Layout::create(&src);
    l.add_image(&img, Some("v1"));
    l.write_index();
    let archive = reg.scratch("archive").join("image.tar");
    skopeo_copy(
        &format!("oci:{}:v1", src.display()),
        &format!("docker-archive:{}:berth-e2e/loaded:v1", archive.display()),
        &[],
    );

    let host = reg.host();
    let dockerd = Dockerd::start(&reg.scratch("docker"), &host);
    dockerd.login(&host, reg.token());
    let out = dockerd.docker().arg("load").arg("-i").arg(&archive).run();
    assert!(
        out.contains("berth-e2e/loaded:v1"),
        "docker load output: {out}"
    );
    let loaded_id = dockerd.image_id("berth-e2e/loaded:v1");

    let remote = format!("{host}/e2e/tests/docker/app:v1");
    dockerd
        .docker()
        .args(["tag", "berth-e2e/loaded:v1", &remote])
        .run();
    let push = dockerd.docker().args(["push", &remote]).run();
    let pushed = push
        .split_whitespace()
        .find(|w| w.starts_with("sha256:"))
        .unwrap_or_else(|| panic!("no digest in docker push output:\n{push}"))
        .to_string();

    let mut c = reg.client();
    let h = c.head("/v2/e2e/tests/docker/app/manifests/v1").expect(200);
    assert_eq!(
        h.header("Docker-Content-Digest"),
        Some(pushed.as_str()),
        "{h:?}"
    );
    let m = c.get("/v2/e2e/tests/docker/app/manifests/v1").expect(200);
    assert_eq!(berth_tests::sha256_digest(&m.body), pushed);
    // Every layer docker pushed is pullable and matches its descriptor.
    let manifest = m.json();
    for d in manifest["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .chain([&manifest["config"]])
    {
        let digest = d["digest"].as_str().unwrap();
        let b = c
            .get(&format!("/v2/e2e/tests/docker/app/blobs/{digest}"))
            .expect(200);
        assert_eq!(berth_tests::sha256_digest(&b.body), digest);
        assert_eq!(b.body.len() as u64, d["size"].as_u64().unwrap());
    }

    dockerd
        .docker()
        .args(["rmi", &remote, "berth-e2e/loaded:v1"])
        .run();
    let gone = dockerd
        .docker()
        .args(["image", "inspect", &remote])
        .output()
        .1;
    assert!(!gone.status.success(), "image still present after rmi");

    dockerd.docker().args(["pull", &remote]).run();
    let pulled_id = dockerd.image_id(&remote);
    assert_eq!(pulled_id, loaded_id, "image id after push, rmi and pull");
    let digests = dockerd
        .docker()
        .args([
            "image",
            "inspect",
            "--format",
            "{{json .RepoDigests}}",
            &remote,
        ])
        .run();
    assert!(
        digests.contains(&pushed),
        "RepoDigests {digests} should name {pushed}"
    );
}

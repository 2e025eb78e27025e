//! docker (a private dockerd, vfs) loads an image archive, pushes it, removes it and pulls
//! it back from the registry.

use berth_tests::clients::{skopeo_copy, Dockerd};
use berth_tests::content::Image;
use berth_tests::layout::Layout;
use berth_tests::Expect as _;
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

/// The Download's archive (`berth_engine::package::archive`), written from an image's
/// blobs, loads in every tool that reads image archives: `docker load` (docker.io 20.10),
/// `podman load`, and skopeo as `docker-archive:` and as `oci-archive:`; the loaded image
/// has the pushed config.
#[test]
fn the_download_archive_loads_in_docker_podman_and_skopeo() {
    use berth_engine::package::{ArchiveBlob, ArchivePlan, ArchiveSpec, Piece};
    use berth_tests::clients::Podman;
    use berth_tests::content::Blob;
    let reg = Registry::start();
    let img = Image::random(2, 200_000);
    let blob = |b: &Blob| ArchiveBlob {
        digest: b.digest.clone(),
        size: b.bytes.len() as u64,
    };
    let layers: Vec<ArchiveBlob> = img.layers.iter().map(blob).collect();
    let name = "127.0.0.1:5000/acme/web/download";
    let plan = ArchivePlan::new(&ArchiveSpec {
        manifest: blob(&img.manifest),
        manifest_media_type: &img.manifest.media_type,
        config: blob(&img.config),
        layers: &layers,
        repository: name,
        tag: Some("1.0"),
    })
    .expect("a sha256 image lays out");
    let all: Vec<&Blob> = [&img.manifest, &img.config]
        .into_iter()
        .chain(&img.layers)
        .collect();
    let mut bytes = Vec::new();
    for p in plan.pieces(0..plan.len()) {
        match p {
            Piece::Bytes(b) => bytes.extend_from_slice(b),
            Piece::Blob { digest, range } => {
                let b = all
                    .iter()
                    .find(|b| b.digest == digest)
                    .expect("a blob of the image");
                bytes.extend_from_slice(&b.bytes[range.start as usize..range.end as usize]);
            }
        }
    }
    assert_eq!(bytes.len() as u64, plan.len());
    let archive = reg.scratch("download").join("download.tar");
    std::fs::write(&archive, &bytes).expect("write the archive");
    let config_id = img.config.digest.clone();

    let dockerd = Dockerd::start(&reg.scratch("docker"), &reg.host());
    let out = dockerd.docker().arg("load").arg("-i").arg(&archive).run();
    assert!(out.contains(&format!("{name}:1.0")), "docker load: {out}");
    assert_eq!(dockerd.image_id(&format!("{name}:1.0")), config_id);

    let podman = Podman::new(&reg.scratch("podman"));
    let out = podman.cmd().arg("load").arg("-i").arg(&archive).run();
    assert!(out.contains(&format!("{name}:1.0")), "podman load: {out}");

    for transport in ["docker-archive", "oci-archive"] {
        let dir = reg.scratch(transport).join("layout");
        skopeo_copy(
            &format!("{transport}:{}", archive.display()),
            &format!("oci:{}:x", dir.display()),
            &[],
        );
        // docker-archive: re-encodes the config; both keep its layers (diff_ids).
        let blob = |digest: &str| -> serde_json::Value {
            let path = dir.join("blobs/sha256").join(&digest[7..]);
            let b = std::fs::read(&path)
                .unwrap_or_else(|e| panic!("{transport}: {} missing: {e}", path.display()));
            serde_json::from_slice(&b).expect("JSON")
        };
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("index.json")).expect("index.json"))
                .expect("JSON");
        let manifest = blob(
            index["manifests"][0]["digest"]
                .as_str()
                .expect("a manifest"),
        );
        let config = blob(manifest["config"]["digest"].as_str().expect("a config"));
        let pushed: serde_json::Value = serde_json::from_slice(&img.config.bytes).unwrap();
        assert_eq!(
            config["rootfs"]["diff_ids"], pushed["rootfs"]["diff_ids"],
            "{transport}"
        );
    }
}

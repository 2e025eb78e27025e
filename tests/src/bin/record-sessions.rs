//! Records what real clients send: skopeo, podman, docker and containerd's ctr push and
//! pull a small image through a recording proxy, and each connection's bytes become a seed
//! of the `connection` fuzz target (`fuzz/corpus/connection/seed-session-*`), which
//! `core/tests/recorded_sessions.rs` also sweeps (every prefix, every one-byte change).
//!
//! It rewrites committed files, so it is a program run on demand, not a test:
//! `cargo run -p berth-tests --bin record-sessions` (with `BERTH_BIN` set as for the
//! end-to-end tests, or after `cargo build --release -p berth-server`).

use std::path::PathBuf;

use berth_tests::clients::{skopeo_copy, Dockerd, Podman};
use berth_tests::content::Image;
use berth_tests::layout::Layout;
use berth_tests::record::Recorder;
use berth_tests::Registry;

/// The fuzz target's first two bytes: pieces of 256 bytes, default limits, digests
/// checked, references checked.
const CONFIG: [u8; 2] = [255, 2 | 4];

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/connection")
}

/// Writes `rec`'s sessions as `seed-session-NAME-N`, replacing earlier ones of `name`.
fn save(rec: &Recorder, name: &str) -> usize {
    let dir = corpus();
    std::fs::create_dir_all(&dir).expect("corpus folder");
    let prefix = format!("seed-session-{name}-");
    for e in std::fs::read_dir(&dir).expect("corpus folder").flatten() {
        if e.file_name().to_string_lossy().starts_with(&prefix) {
            std::fs::remove_file(e.path()).expect("remove an old session");
        }
    }
    let sessions: Vec<_> = rec
        .sessions()
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect();
    for (i, s) in sessions.iter().enumerate() {
        let mut bytes = CONFIG.to_vec();
        bytes.extend_from_slice(s);
        std::fs::write(dir.join(format!("{prefix}{i}")), bytes).expect("write a session");
    }
    sessions.len()
}

fn main() {
    let reg = Registry::start();
    // Small layers: the sweep replays every prefix of every session.
    let img = Image::random(2, 150);
    let src = reg.scratch("src");
    let mut l = Layout::create(&src);
    l.add_image(&img, Some("v1"));
    l.write_index();
    let oci = format!("oci:{}:v1", src.display());

    let rec = Recorder::start(reg.addr());
    let host = rec.host();
    let authfile = reg.scratch("auth").join("auth.json");
    berth_tests::clients::skopeo_login(&authfile, &host, reg.token());
    let auth = format!("--authfile={}", authfile.display());
    let skopeo_ref = format!("docker://{host}/e2e/tests/rec/skopeo:v1");
    skopeo_copy(&oci, &skopeo_ref, &[&auth]);
    let back = reg.scratch("back");
    skopeo_copy(&skopeo_ref, &format!("oci:{}:v1", back.display()), &[&auth]);
    let skopeo = save(&rec, "skopeo");

    let rec = Recorder::start(reg.addr());
    let host = rec.host();
    let podman = Podman::new(&reg.scratch("podman"));
    podman.login(&host, reg.token());
    let from = format!("{host}/e2e/tests/rec/skopeo:v1");
    let to = format!("{host}/e2e/tests/rec/podman:v2");
    podman
        .cmd()
        .args(["pull", "--tls-verify=false", &from])
        .run();
    podman.cmd().args(["tag", &from, &to]).run();
    podman.cmd().args(["push", "--tls-verify=false", &to]).run();
    let podman = save(&rec, "podman");

    let rec = Recorder::start(reg.addr());
    let host = rec.host();
    let dockerd = Dockerd::start(&reg.scratch("docker"), &host);
    dockerd.login(&host, reg.token());
    let from = format!("{host}/e2e/tests/rec/skopeo:v1");
    let to = format!("{host}/e2e/tests/rec/docker:v3");
    dockerd.docker().args(["pull", &from]).run();
    dockerd.docker().args(["tag", &from, &to]).run();
    dockerd.docker().args(["push", &to]).run();
    let user = format!("berth:{}", reg.token());
    dockerd.ctr_pull(&to, Some(&user)).run();
    let docker = save(&rec, "docker-and-ctr");

    assert!(
        skopeo >= 2 && podman >= 1 && docker >= 2,
        "sessions recorded: skopeo {skopeo}, podman {podman}, docker and ctr {docker}"
    );
    println!("recorded sessions: skopeo {skopeo}, podman {podman}, docker and ctr {docker}");
}

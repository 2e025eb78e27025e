//! Content discovery of the OCI conformance suite (spec digest §10.1 "Content discovery",
//! §7, §8.1, §8.2): tags lists with pagination, the referrers API, the catalog.

use berth_tests::content::{self, fields, Blob, Descriptor, Image, OCI_INDEX};
use berth_tests::digest::sha256_digest;
use berth_tests::http::{path_of, Client};
use berth_tests::Expect as _;
use berth_tests::{Registry, Request};
use serde_json::{json, Value};

const NAME: &str = "e2e/tests/conformance/discovery";

fn tags(c: &mut Client, query: &str) -> (Vec<String>, Option<String>) {
    let r = c.get(&format!("/v2/{NAME}/tags/list{query}")).expect(200);
    let ct = r.header("Content-Type").unwrap_or_default();
    assert!(
        ct.starts_with("application/json"),
        "tags list Content-Type {ct:?}"
    );
    let v = r.json();
    assert_eq!(v["name"], json!(NAME), "{r:?}");
    let list = v["tags"]
        .as_array()
        .unwrap_or_else(|| panic!("`tags` must be an array (never null):\n{r:?}"))
        .iter()
        .map(|t| t.as_str().expect("tag is a string").to_string())
        .collect();
    (list, r.header("Link").map(str::to_string))
}

/// T1 "Tags" + T2 `last` semantics: full list sorted byte-wise, `n` exact, `last` exclusive,
/// `Link` to the next page.
#[test]
fn tags_list_paginates_with_n_and_last() {
    let reg = Registry::start();
    let mut c = reg.client();
    let img = Image::random(1, 128);
    let mut pushed = vec![
        "test0",
        "test1",
        "test2",
        "test3",
        "Upper",
        "latest",
        "v1.0.0",
        "v1.0.0-rc_1",
    ];
    c.push_image(NAME, &img, pushed[0]);
    for t in &pushed[1..] {
        c.put_manifest(NAME, t, &img.manifest);
    }
    pushed.sort(); // byte-wise, as Go's sort.Strings
    let (all, _) = tags(&mut c, "");
    assert_eq!(all, pushed, "full tag list, byte-wise sorted");

    let half = all.len() / 2;
    let (page, link) = tags(&mut c, &format!("?n={half}"));
    assert_eq!(page, all[..half], "n={half} must return exactly that many");
    if let Some(link) = link {
        assert!(link.contains("rel=\"next\""), "Link {link}");
        let url = link.split('>').next().unwrap().trim_start_matches('<');
        let next = c.get(&path_of(url)).expect(200);
        let got: Vec<String> = next.json()["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect();
        assert_eq!(got, all[half..half + got.len()], "page 2 via Link");
    }

    let last = &all[half - 1];
    let (after, _) = tags(&mut c, &format!("?last={last}"));
    assert_eq!(
        after,
        all[half..],
        "last={last} returns exactly the tags after it"
    );
    let (after, _) = tags(&mut c, &format!("?n=2&last={last}"));
    assert_eq!(after, all[half..half + 2]);

    let (none, link) = tags(&mut c, "?n=0");
    assert!(
        none.is_empty() && link.is_none(),
        "n=0 → empty list, no Link"
    );
    let r = c.get(&format!("/v2/{NAME}/tags/list?n=-1"));
    assert_eq!(r.status, 400, "negative n:\n{r:?}");
}

#[test]
fn tags_list_of_an_unknown_repository_is_404_name_unknown() {
    let reg = Registry::start();
    let mut c = reg.client();
    let r = c.get("/v2/e2e/tests/no/such/repo/tags/list").expect(404);
    assert_eq!(r.error_codes()[0], "NAME_UNKNOWN", "{r:?}");
}

/// The referrers entry a manifest should produce (digest §7.2).
fn entry(m: &Blob) -> Value {
    let v: Value = serde_json::from_slice(&m.bytes).unwrap();
    let artifact_type = v.get("artifactType").cloned().or_else(|| {
        (m.media_type == content::OCI_MANIFEST).then(|| v["config"]["mediaType"].clone())
    });
    let mut e = json!({"mediaType": m.media_type, "digest": m.digest, "size": m.len()});
    if let Some(at) = artifact_type {
        e["artifactType"] = at;
    }
    if let Some(a) = v.get("annotations") {
        e["annotations"] = a.clone();
    }
    e
}

fn referrers(
    c: &mut Client,
    name: &str,
    digest: &str,
    query: &str,
) -> (Vec<Value>, Option<String>) {
    let r = c
        .get(&format!("/v2/{name}/referrers/{digest}{query}"))
        .expect(200);
    assert_eq!(
        r.header("Content-Type"),
        Some(OCI_INDEX),
        "referrers Content-Type must be exactly the index type:\n{r:?}"
    );
    let v = r.json();
    assert_eq!(v["schemaVersion"], json!(2), "{r:?}");
    let list = v["manifests"]
        .as_array()
        .unwrap_or_else(|| panic!("referrers `manifests` must be an array:\n{r:?}"))
        .clone();
    (list, r.header("OCI-Filters-Applied").map(str::to_string))
}

fn sorted(mut v: Vec<Value>) -> Vec<Value> {
    v.sort_by(|a, b| a["digest"].as_str().cmp(&b["digest"].as_str()));
    v
}

/// T1 "Referrers": artifacts pushed before and after their subject, an index referrer,
/// `OCI-Subject` on every push, exact entries, the `artifactType` filter, a missing subject.
#[test]
fn referrers_list_exactly_the_manifests_whose_subject_is_the_digest() {
    let reg = Registry::start();
    let mut c = reg.client();
    let subject_img = Image::random(1, 256);
    let subject = subject_img.manifest.desc();
    let empty = content::empty_json();
    c.push_blob(NAME, &empty);

    let put_ref = |c: &mut Client, m: &Blob, subject: &str| {
        let r = c.put_manifest(NAME, &m.digest, m);
        assert_eq!(
            r.header("OCI-Subject"),
            Some(subject),
            "OCI-Subject on a referrer push:\n{r:?}"
        );
    };

    // Referrers A: config-typed artifacts (no artifactType), pushed BEFORE the subject.
    let mut all = Vec::new();
    for i in 0..2 {
        let cfg = Blob::new(
            "application/vnd.berth.test.config.a",
            format!("{{\"a\":{i}}}").into_bytes(),
        );
        let layer = Blob::new(
            "application/vnd.berth.test.layer",
            content::random_bytes(50),
        );
        c.push_blob(NAME, &cfg);
        c.push_blob(NAME, &layer);
        let m = content::manifest(
            &cfg.desc(),
            &[layer.desc()],
            fields([
                ("subject", subject.to_json()),
                ("annotations", json!({"org.berth.test": format!("a{i}")})),
            ]),
        );
        put_ref(&mut c, &m, &subject.digest);
        all.push(m);
    }
    // An index referrer with artifactType.
    let idx = content::index(
        &[],
        fields([
            ("artifactType", json!("application/vnd.berth.test.index")),
            ("subject", subject.to_json()),
            ("annotations", json!({"org.berth.test": "idx"})),
        ]),
    );
    put_ref(&mut c, &idx, &subject.digest);
    all.push(idx);

    // Now the subject itself.
    c.push_image(NAME, &subject_img, "tagtest0");

    // Referrers B: artifactType with the empty config, pushed AFTER the subject.
    let mut typed_b = Vec::new();
    for i in 0..2 {
        let (m, layer) = content::artifact(
            "application/vnd.berth.test.b",
            &subject,
            ("org.berth.test", &format!("b{i}")),
        );
        c.push_blob(NAME, &layer);
        put_ref(&mut c, &m, &subject.digest);
        typed_b.push(m.clone());
        all.push(m);
    }

    // Referrer C: its subject is never pushed.
    let ghost = Descriptor::new(
        content::OCI_MANIFEST,
        &sha256_digest(b"never pushed subject"),
        123,
    );
    let (ref_c, layer_c) = content::artifact(
        "application/vnd.berth.test.c",
        &ghost,
        ("org.berth.test", "c"),
    );
    c.push_blob(NAME, &layer_c);
    put_ref(&mut c, &ref_c, &ghost.digest);

    // Unknown digest → 200 with an empty index.
    let (none, _) = referrers(&mut c, NAME, &sha256_digest(b"nothing refers to me"), "");
    assert!(none.is_empty(), "{none:?}");

    // The subject: all five, exactly as pushed.
    let (got, _) = referrers(&mut c, NAME, &subject.digest, "");
    assert_eq!(got.len(), 5, "{got:#?}");
    let want: Vec<Value> = all.iter().map(entry).collect();
    assert_eq!(
        sorted(got.clone()),
        sorted(want),
        "referrers entries (mediaType, digest, size, artifactType, annotations exactly)"
    );

    // Filtered by artifactType.
    let (got, applied) = referrers(
        &mut c,
        NAME,
        &subject.digest,
        "?artifactType=application/vnd.berth.test.b",
    );
    assert_eq!(
        applied.as_deref(),
        Some("artifactType"),
        "OCI-Filters-Applied when filtering"
    );
    assert_eq!(sorted(got), sorted(typed_b.iter().map(entry).collect()));

    // Config-typed artifacts filter by their config media type.
    let (got, _) = referrers(
        &mut c,
        NAME,
        &subject.digest,
        "?artifactType=application/vnd.berth.test.config.a",
    );
    assert_eq!(got.len(), 2, "{got:#?}");

    // Missing subject: exactly referrer C.
    let (got, _) = referrers(&mut c, NAME, &ghost.digest, "");
    assert_eq!(got, vec![entry(&ref_c)]);

    // Referrers never cross repositories.
    let (got, _) = referrers(
        &mut c,
        "e2e/tests/conformance/elsewhere",
        &subject.digest,
        "",
    );
    assert!(got.is_empty(), "{got:?}");

    // Deleting a referrer removes it from the list.
    c.delete(&format!("/v2/{NAME}/manifests/{}", typed_b[0].digest))
        .expect(202);
    let (got, _) = referrers(&mut c, NAME, &subject.digest, "");
    assert_eq!(got.len(), 4, "{got:#?}");
    assert!(got.iter().all(|e| e["digest"] != json!(typed_b[0].digest)));
}

#[test]
fn referrers_with_a_malformed_digest_is_400() {
    let reg = Registry::start();
    let mut c = reg.client();
    let r = c.get(&format!("/v2/{NAME}/referrers/sha256:nothex"));
    assert_eq!(r.status, 400, "{r:?}");
}

/// T2 "empty": a fresh repository lists no tags (200 or 404) and no referrers (200).
#[test]
fn fresh_repository_has_no_tags_and_an_empty_referrers_index() {
    let reg = Registry::start();
    let mut c = reg.client();
    c.get("/v2/e2e/tests/fresh/repo/tags/list")
        .expect_one_of(&[200, 404]);
    let (got, _) = referrers(&mut c, "e2e/tests/fresh/repo", &sha256_digest(b"x"), "");
    assert!(got.is_empty());
}

/// Catalog (§8.2): every repository, sorted, paginated like tags.
#[test]
fn catalog_lists_repositories_sorted_and_paginated() {
    let reg = Registry::start();
    let mut c = reg.client();
    let img = Image::random(1, 128);
    let mut names = vec![
        "e2e/tests/zeta/app",
        "e2e/tests/alpha/app",
        "e2e/tests/alpha/app/sub",
        "e2e/tests/mid/x",
    ];
    for n in &names {
        c.push_image(n, &img, "latest");
    }
    names.sort();
    let r = c.get("/v2/_catalog").expect(200);
    let repos: Vec<String> = r.json()["repositories"]
        .as_array()
        .unwrap_or_else(|| panic!("{r:?}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(repos, names);
    let r = c.get("/v2/_catalog?n=2").expect(200);
    let page: Vec<String> = r.json()["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(page, names[..2]);
    let r = c
        .get(&format!("/v2/_catalog?n=10&last={}", names[1]))
        .expect(200);
    let page: Vec<String> = r.json()["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(page, names[2..]);
}

/// A HEAD of the tags list is not required; a GET with a subject-tag style name works as any
/// tag (digest §7.5: `sha256-…` tags are ordinary when referrers are supported).
#[test]
fn referrers_tag_schema_names_are_ordinary_tags() {
    let reg = Registry::start();
    let mut c = reg.client();
    let img = Image::random(1, 128);
    let tag = format!("sha256-{}", &img.manifest.digest[7..]);
    c.push_image(NAME, &img, &tag);
    c.assert_manifest(NAME, &tag, &img.manifest);
    let r = c
        .send(Request::get(&format!("/v2/{NAME}/tags/list")))
        .expect(200);
    assert!(r.json()["tags"].as_array().unwrap().contains(&json!(tag)));
}

//! Repositories listed by prefix: one registry's images for the web pages.

mod common;

use common::*;

#[test]
fn repos_list_by_prefix_in_pages_and_count() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    assert_eq!(
        e.list_repos("acme/web/", None, 10).unwrap(),
        (vec![], false)
    );
    assert_eq!(e.count_repos("acme/web/").unwrap(), 0);
    for n in [
        "acme/web/b",
        "acme/web/a",
        "acme/web/a/sub",
        "acme/webx/c",
        "acme/wea/z",
        "beta/web/a",
    ] {
        push(&e, n, b"x");
    }
    let all = ["acme/web/a", "acme/web/a/sub", "acme/web/b"].map(String::from);
    assert_eq!(
        e.list_repos("acme/web/", None, 10).unwrap(),
        (all.to_vec(), false)
    );
    assert_eq!(
        e.list_repos("acme/web/", None, 2).unwrap(),
        (all[..2].to_vec(), true)
    );
    assert_eq!(
        e.list_repos("acme/web/", Some("acme/web/a/sub"), 2)
            .unwrap(),
        (all[2..].to_vec(), false)
    );
    // a position before the prefix starts at it; one past the end lists nothing
    assert_eq!(
        e.list_repos("acme/web/", Some("acme/a"), 10).unwrap().0,
        all.to_vec()
    );
    assert_eq!(
        e.list_repos("acme/web/", Some("acme/web/z"), 10).unwrap(),
        (vec![], false)
    );
    assert_eq!(e.count_repos("acme/web/").unwrap(), 3);
    assert_eq!(e.count_repos("acme/").unwrap(), 5);
}

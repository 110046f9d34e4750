//! The Python client (`clients/python`) against a real three-org network:
//! its pytest suite, which covers every method and its error paths, and
//! `examples/notebook.ipynb`, executed end to end (`test_notebook.py`).
//!
//! `LEASEHOLD_PYTHON` names a Python with the client and its test extras
//! installed (`scripts/test.sh` makes one); without it the test says
//! SKIPPED, unless `LEASEHOLD_REQUIRE_PYTHON` is set, when it fails.

mod common;

use std::process::Command;

use common::*;

#[tokio::test(flavor = "multi_thread")]
async fn the_python_client_and_its_notebook_against_a_real_network() {
    let Some(python) = std::env::var_os("LEASEHOLD_PYTHON") else {
        assert!(
            std::env::var_os("LEASEHOLD_REQUIRE_PYTHON").is_none(),
            "LEASEHOLD_REQUIRE_PYTHON is set and LEASEHOLD_PYTHON is not"
        );
        eprintln!("SKIPPED: set LEASEHOLD_PYTHON to a Python with ./clients/python[test,notebook] installed");
        return;
    };
    let net = TestNet::start(3).await;
    let urls: Vec<&str> = net.nodes.iter().map(|n| n.url.as_str()).collect();
    let tokens: Vec<String> = net.nodes.iter().map(|n| path_str(&n.dir.join("admin.token")).to_string()).collect();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "clients/python/tests"])
        .current_dir(root)
        .env("LEASEHOLD_TEST_URLS", urls.join(","))
        .env("LEASEHOLD_TEST_TOKEN_FILES", tokens.join(","))
        .env("LEASEHOLD_TEST_BIN", bin())
        .output()
        .expect("run pytest");
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{report}");
    if !out.status.success() {
        for i in 0..3 {
            eprintln!(
                "--- org{} log (tail)\n{}",
                i + 1,
                net.log(i).lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }
    assert!(out.status.success(), "pytest failed:\n{report}");
    assert!(!report.contains("skipped"), "every client test runs:\n{report}");
}

//! The command line as README documents it, against three real nodes:
//! `init`'s key files, `status`, `user add`, `workflow argo`, and `run`'s
//! exit status; and a node whose bubblewrap cannot run refuses workflows
//! through the API.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

use common::*;
use serde_json::{json, Value};

fn leasehold(args: &[&str]) -> Output {
    Command::new(bin()).args(args).output().expect("run leasehold")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_writes_every_secret_readable_by_its_owner_only_and_stores_tokens_hashed() {
    let net = TestNet::start(3).await;
    for node in &net.nodes {
        let keys: Vec<_> = files_under(&node.dir.join("keys"));
        assert_eq!(keys.len(), 3, "signing, x25519 and p2p keys: {keys:?}");
        for f in keys.iter().chain([&node.dir.join("admin.token")]) {
            assert_eq!(mode(f), 0o600, "{} is mode {:o}", f.display(), mode(f));
        }
        let users = node.dir.join("data/users.json");
        assert_eq!(mode(&users), 0o600, "the token store");
        let stored = std::fs::read_to_string(&users).unwrap();
        assert!(!stored.contains(node.token.trim()), "the admin token is stored in the clear");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_user_add_argo_and_run_work_as_documented() {
    let net = TestNet::start(3).await;
    let url = net.nodes[1].url.clone();

    // `status --url URL`: the node's height, head, state root, leader and peers.
    let out = leasehold(&["status", "--url", &url]);
    assert!(out.status.success(), "{}", text(&out));
    let s: Value = serde_json::from_slice(&out.stdout).expect("status prints JSON");
    assert_eq!(s["org"], "org2");
    for field in ["height", "head_hash", "state_root", "leader", "peers"] {
        assert!(!s[field].is_null(), "status lacks {field}: {s}");
    }

    // `user add`: a member's token, printed once, that works at once.
    let cfg = net.nodes[1].dir.join("node.toml");
    let out = leasehold(&["user", "add", "--config", path_str(&cfg), "--name", "ann", "--role", "member"]);
    assert!(out.status.success(), "{}", text(&out));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(token.starts_with("lh_"), "{token:?}");
    assert_eq!(net.call(1, "GET", "/v1/datasets", Some(&token), None).await.0, 200);
    let (code, p) = net.call(1, "POST", "/v1/users", Some(&token), Some(json!({"name": "x", "role": "viewer"}))).await;
    assert_eq!(code, 403, "a member is not an admin: {p}");
    // `user list` shows ann; `user revoke` ends her token on the running node at once.
    let out = leasehold(&["user", "list", "--config", path_str(&cfg)]);
    assert!(String::from_utf8_lossy(&out.stdout).lines().any(|l| l.starts_with("ann\tmember\t")), "{}", text(&out));
    let out = leasehold(&["user", "revoke", "--config", path_str(&cfg), "--name", "ann"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(net.call(1, "GET", "/v1/datasets", Some(&token), None).await.0, 401, "a revoked token still works");
    assert!(!leasehold(&["user", "revoke", "--config", path_str(&cfg), "--name", "ann"]).status.success());

    // `workflow argo -f`: the same DAG as an Argo Workflow.
    let dir = tempfile::tempdir().unwrap();
    let wf = dir.path().join("workflow.yaml");
    std::fs::write(&wf, "name: two\njobs: [echo one, echo two]\ndags: ['1 >> 2']\n").unwrap();
    let out = leasehold(&["workflow", "argo", "-f", path_str(&wf)]);
    assert!(out.status.success(), "{}", text(&out));
    let argo: Value = serde_norway::from_slice(&out.stdout).expect("argo output is YAML");
    assert_eq!(argo["kind"], "Workflow", "{argo}");
    assert!(argo["apiVersion"].as_str().unwrap().starts_with("argoproj.io/"), "{argo}");
    let templates = argo["spec"]["templates"].as_array().unwrap();
    let dag = &templates.iter().find(|t| t["name"] == "dag").expect("a dag template")["dag"]["tasks"];
    assert_eq!(dag[1]["dependencies"], json!(["job-1"]), "job 2 runs after job 1: {argo}");
    let job2 = templates.iter().find(|t| t["name"] == "job-2").expect("job-2");
    assert_eq!(job2["container"]["command"], json!(["echo", "two"]), "{argo}");

    // `run`: exits 0 only if the run succeeded, and prints the jobs' output.
    let token_file = net.nodes[1].dir.join("admin.token");
    let run = |yaml: &str| {
        std::fs::write(&wf, yaml).unwrap();
        leasehold(&["run", "-f", path_str(&wf), "--url", &url, "--token-file", path_str(&token_file)])
    };
    let ok = run("jobs: [\"echo all-good\"]\ncmd_mode: shell\n");
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    assert!(text(&ok).contains("all-good"), "{}", text(&ok));
    let failed = run("jobs: [\"echo about-to-fail; exit 3\"]\ncmd_mode: shell\n");
    assert_ne!(failed.status.code(), Some(0), "a failed run exits non-zero: {}", text(&failed));
    assert!(text(&failed).contains("exit code 3"), "{}", text(&failed));
    let refused = run("jobs: [a, b]\ndags: ['1 >> 2', '2 >> 1']\n");
    assert_ne!(refused.status.code(), Some(0), "a refused workflow exits non-zero: {}", text(&refused));
    assert!(text(&refused).contains("cycle"), "{}", text(&refused));

    // `run -f DIR/workflow.yaml` sends DIR: the scripts beside the workflow
    // are in the jobs' working directory, and `python` is Python 3.
    std::fs::write(dir.path().join("job1.py"), "import sys\nprint('job1 got', sys.argv[1])\n").unwrap();
    std::fs::create_dir(dir.path().join("lib")).unwrap();
    std::fs::write(dir.path().join("lib/data.txt"), "from the bundle\n").unwrap();
    let ok = run("jobs: ['python job1.py foo', 'cat lib/data.txt']\ndags: ['1 >> 2']\n");
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    assert!(text(&ok).contains("job1 got foo") && text(&ok).contains("from the bundle"), "{}", text(&ok));
}

/// A tar entry that climbs out, a link, or a second copy of a path: the
/// bundle is refused naming it, and nothing is written outside.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_bundle_is_refused_and_writes_nothing_outside() {
    let net = TestNet::start(3).await;
    let marker = net.dir.path().join("escaped.txt");
    let tar_of = |entries: &[(&str, tar::EntryType, &str)]| {
        let mut out = Vec::new();
        for (name, kind, data) in entries {
            let mut h = tar::Header::new_old();
            // Set by hand: the builder itself refuses '..'.
            h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
            h.set_entry_type(*kind);
            h.set_size(if *kind == tar::EntryType::Regular { data.len() as u64 } else { 0 });
            if *kind == tar::EntryType::Symlink {
                h.set_link_name(data).unwrap();
            }
            h.set_mode(0o644);
            h.set_cksum();
            out.extend_from_slice(h.as_bytes());
            if *kind == tar::EntryType::Regular {
                out.extend_from_slice(data.as_bytes());
                out.resize(out.len().div_ceil(512) * 512, 0);
            }
        }
        out.resize(out.len() + 1024, 0);
        out
    };
    let yaml = ("workflow.yaml", tar::EntryType::Regular, "jobs: [ls]\n");
    let escape = format!("../../../../../../../..{}", marker.display());
    let cases = [
        (vec![yaml, (escape.as_str(), tar::EntryType::Regular, "x")], "must be relative"),
        (vec![yaml, ("link", tar::EntryType::Symlink, "/etc")], "only files and directories"),
        (vec![yaml, ("a.py", tar::EntryType::Regular, "1"), ("a.py", tar::EntryType::Regular, "2")], "a.py"),
        (vec![("job.py", tar::EntryType::Regular, "x")], "no workflow.yaml"),
    ];
    for (entries, reason) in cases {
        let (code, p) = net.call_raw(1, "POST", "/v1/runs", tar_of(&entries), "application/x-tar").await;
        assert_eq!((code, p["field"].as_str()), (422, Some("bundle")), "{p}");
        assert!(p["detail"].as_str().unwrap().contains(reason), "{reason}: {p}");
    }
    assert!(!marker.exists(), "a bundle wrote outside its directory");
    assert_eq!(net.get(1, "/v1/runs").await.1, json!([]), "no run was recorded");
    // The same shape, well-formed, runs.
    let good = tar_of(&[
        ("workflow.yaml", tar::EntryType::Regular, "jobs: ['cat a.py']\n"),
        ("a.py", tar::EntryType::Regular, "1"),
    ]);
    let (code, r) = net.call_raw(1, "POST", "/v1/runs", good, "application/x-tar").await;
    assert_eq!(code, 201, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_bubblewrap_cannot_run_refuses_workflows_through_the_api() {
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if !root {
        eprintln!("SKIPPED: hiding bubblewrap from one node needs a mount namespace, so root");
        return;
    }
    let mut net = TestNet::start(3).await;
    // org3's node runs in its own mount namespace where bwrap is /dev/null.
    net.stop(2);
    let hide = "mount --bind /dev/null \"$(command -v bwrap)\" && exec \"$@\"";
    net.spawn_under(2, &["unshare", "--mount", "--propagation", "private", "sh", "-c", hide, "sh"]);
    net.wait_for_leader(std::time::Duration::from_secs(30)).await;
    let (code, p) = net.call_raw(2, "POST", "/v1/runs", b"jobs: [echo hi]\n".to_vec(), "application/yaml").await;
    assert_eq!(code, 503, "{p}");
    let detail = p["detail"].as_str().unwrap();
    assert!(detail.contains("cannot sandbox jobs: bubblewrap cannot"), "{p}");
    assert!(detail.contains("workflow.allow_unsandboxed"), "says how to choose otherwise: {p}");
    let (_, runs) = net.get(2, "/v1/runs").await;
    assert_eq!(runs, json!([]), "no run was recorded");
    // The same workflow runs on a node whose sandbox works.
    let (code, r) = net.call_raw(1, "POST", "/v1/runs", b"jobs: [echo hi]\n".to_vec(), "application/yaml").await;
    assert_eq!(code, 201, "{r}");
}

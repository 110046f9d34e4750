//! A network made by the genesis ceremony: each org makes its keys in a
//! directory of its own, the genesis is built from public cards, and each
//! org signs it in turn. No directory ever holds another org's secret, and
//! no node starts before every org signed.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_orgs_made_apart_agree_on_a_genesis_each_signed() {
    let root = tempfile::tempdir().unwrap();
    let held = ports::reserve(6);
    let ports: Vec<u16> = held.iter().map(|p| p.number).collect();
    let dirs: Vec<PathBuf> = (1..=3).map(|i| root.path().join(format!("machine{i}"))).collect();
    // 1. Each org, on its own machine, makes its keys and prints its card.
    let mut cards = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        let org = format!("org{}", i + 1);
        let card: Value = serde_json::from_str(&leasehold_ok(&[
            "org",
            "new",
            "--org",
            &org,
            "--name",
            &format!("Org {}", i + 1),
            "--dir",
            path_str(dir),
            "--p2p-addr",
            &format!("127.0.0.1:{}", ports[i]),
            "--api-addr",
            &format!("127.0.0.1:{}", ports[3 + i]),
        ]))
        .unwrap();
        assert_eq!(card["org"], org.as_str());
        assert!(card.get("signing_secret").is_none() && !card.to_string().contains("secret"), "{card}");
        cards.push(dir.join("card.json"));
    }
    // 2. Anyone assembles the genesis from the cards alone.
    let shared = root.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    let genesis = shared.join("genesis.json");
    let mut args = vec!["genesis", "new", "--network-id", "ceremony-net", "--out", path_str(&genesis), "--cards"];
    args.extend(cards.iter().map(|c| path_str(c)));
    leasehold_ok(&args);
    // 3. Each org signs it in turn, on its own machine.
    for dir in &dirs {
        copy(&genesis, &dir.join("genesis.json"));
        if shared.join("genesis.sigs.json").exists() {
            copy(&shared.join("genesis.sigs.json"), &dir.join("genesis.sigs.json"));
        }
        let config = dir.join("node.toml");
        leasehold_ok(&[
            "genesis",
            "sign",
            "--genesis",
            path_str(&dir.join("genesis.json")),
            "--config",
            path_str(&config),
        ]);
        copy(&dir.join("genesis.sigs.json"), &shared.join("genesis.sigs.json"));
        if dir == &dirs[1] {
            // Two of three signed: no node starts yet.
            let out = Command::new(bin()).args(["start", "--config"]).arg(&config).output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success() && err.contains("lacks a valid signature of org3"), "{err}");
        }
    }
    for dir in &dirs {
        copy(&shared.join("genesis.sigs.json"), &dir.join("genesis.sigs.json"));
    }
    // A genesis edited after signing, even by a byte, is not the one signed.
    let path = dirs[0].join("genesis.json");
    let signed = std::fs::read(&path).unwrap();
    std::fs::write(&path, [signed.as_slice(), b"\n"].concat()).unwrap();
    let out = Command::new(bin()).args(["start", "--config"]).arg(dirs[0].join("node.toml")).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("lacks a valid signature of org1, org2, org3"), "{err}");
    std::fs::write(&path, &signed).unwrap();
    // One org listed twice (a second vote for one key) is refused, and a
    // signer names the hash it agreed to.
    let mut twice: Value = serde_json::from_slice(&signed).unwrap();
    let mut copy_of_org1 = twice["orgs"][0].clone();
    copy_of_org1["id"] = json!("org9");
    twice["orgs"].as_array_mut().unwrap().push(copy_of_org1);
    let forged = root.path().join("forged.json");
    std::fs::write(&forged, twice.to_string()).unwrap();
    let cfg1 = dirs[0].join("node.toml");
    let out = Command::new(bin())
        .args(["genesis", "sign", "--genesis", path_str(&forged), "--config", path_str(&cfg1)])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is listed twice in the genesis"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let wrong =
        ["genesis", "sign", "--genesis", path_str(&path), "--config", path_str(&cfg1), "--sha256", &"0".repeat(64)];
    let out = Command::new(bin()).args(wrong).output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not the one expected"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A signature that is not org2's over these bytes does not count.
    let sigs_path = dirs[0].join("genesis.sigs.json");
    let good = std::fs::read_to_string(&sigs_path).unwrap();
    let mut sigs: Value = serde_json::from_str(&good).unwrap();
    sigs["org2"] = sigs["org1"].clone();
    std::fs::write(&sigs_path, sigs.to_string()).unwrap();
    let out = Command::new(bin()).args(["start", "--config"]).arg(dirs[0].join("node.toml")).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("lacks a valid signature of org2"), "{err}");
    std::fs::write(&sigs_path, good).unwrap();
    // No directory holds another org's secret.
    for (i, dir) in dirs.iter().enumerate() {
        for (j, other) in dirs.iter().enumerate().filter(|(j, _)| *j != i) {
            for key in ["signing.key", "x25519.key", "p2p.key"] {
                let secret = std::fs::read(other.join("keys").join(key)).unwrap();
                for f in files_under(dir) {
                    let bytes = std::fs::read(&f).unwrap();
                    assert!(
                        !bytes.windows(secret.len()).any(|w| w == secret),
                        "org{}'s {key} in {}",
                        j + 1,
                        f.display()
                    );
                }
            }
        }
    }
    // 4. They start from their own directories and agree.
    let mut net = TestNet::of_orgs(root, held, &dirs, &ports[3..]);
    for i in 0..3 {
        net.spawn(i);
    }
    net.wait_for_leader(Duration::from_secs(30)).await;
    let body = json!({"id": "shared", "title": "t", "policy": {"allowed_orgs": ["org2"], "max_lease_ms": 60_000}, "private_metadata": {}});
    let (code, r) = net.call(0, "POST", "/v1/datasets", None, Some(body)).await;
    assert_eq!(code, 201, "{r}");
    let head = net.wait_converged(1, Duration::from_secs(20)).await;
    for i in 0..3 {
        assert_eq!(net.get(i, "/v1/datasets/shared").await.0, 200, "node {i}");
    }
    assert!(head["height"].as_u64().unwrap() >= 1, "{head}");
    println!("converged: {head}");
}

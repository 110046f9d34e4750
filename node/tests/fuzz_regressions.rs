//! Every input a fuzzer ever crashed on (`fuzz/regressions/<target>/`) and
//! every seed (`fuzz/seeds/<target>/`) replayed through the checks the fuzz
//! targets run (`leasehold_node::fuzzing`), on stable Rust, in every test
//! run. `scripts/fuzz.sh` copies each new crash into `fuzz/regressions`.

use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use leasehold_chaincode::{canonical, Payload, SignedTx, TxBody};
use leasehold_node::block::{Block, BlockHeader};
use leasehold_node::fuzzing;
use leasehold_node::ledger::store::encode;
use leasehold_node::wire::Rpc;

type Check = fn(&[u8]);
const TARGETS: [(&str, Check); 4] = [
    ("signed_txs", fuzzing::signed_txs),
    ("block", fuzzing::block),
    ("rpc", fuzzing::rpc),
    ("workflow", fuzzing::workflow),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = fuzz_dir().join(kind).join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    files.sort();
    files
}

#[test]
fn every_recorded_crash_and_seed_passes_its_check() {
    let mut seeds = 0;
    for (target, check) in TARGETS {
        for kind in ["regressions", "seeds"] {
            for file in inputs(kind, target) {
                let bytes = std::fs::read(&file).unwrap();
                let run = std::panic::catch_unwind(|| check(&bytes));
                assert!(run.is_ok(), "{} fails its check", file.display());
                seeds += usize::from(kind == "seeds");
            }
        }
    }
    assert!(seeds >= 8, "the seed corpus is missing ({seeds} seeds): run this file's write_seeds");
}

fn tx(nonce: u64) -> SignedTx {
    let body = TxBody {
        network_id: "leasehold-testnet".into(),
        org: "org2".into(),
        nonce,
        created_at_ms: 1_790_000_000_000,
        payload: Payload::RequestLease {
            lease_id: format!("l{nonce}"),
            dataset_id: "ds".into(),
            duration_ms: 60_000,
            purpose: "fuzz seed".into(),
        },
    };
    body.sign(&SigningKey::from_bytes(&[7; 32]))
}

fn block(txs: Vec<SignedTx>) -> Block {
    let header = BlockHeader {
        height: 3,
        prev_hash: [1; 32],
        time_ms: 1_790_000_000_000,
        proposer: "org1".into(),
        txs_root: [2; 32],
        verdicts_root: [3; 32],
        state_root: [4; 32],
    };
    let verdicts = txs.iter().map(|_| leasehold_chaincode::Verdict::Valid).collect();
    Block { header, proposer_signature: vec![5; 64], proposed_time_ms: 1_790_000_000_001, txs, verdicts }
}

/// Well-formed inputs of each target, for the fuzzers to start from.
fn seeds() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let yaml = |s: &str| s.as_bytes().to_vec();
    vec![
        ("signed_txs", "one", canonical::to_bytes(&vec![tx(1)])),
        ("signed_txs", "three", canonical::to_bytes(&vec![tx(1), tx(2), tx(3)])),
        ("block", "empty", block(vec![]).to_bytes()),
        ("block", "two_txs", block(vec![tx(4), tx(5)]).to_bytes()),
        ("rpc", "forward", encode(&Rpc::Forward(vec![tx(6)]))),
        ("rpc", "certify_none", encode(&Rpc::Certify(vec![]))),
        ("workflow", "shell", yaml("cmd_mode: shell\njobs:\n- command: echo hi\n")),
        (
            "workflow",
            "dag",
            yaml(
                "name: qc\ncmd_mode: exec\njobs:\n- command: python3 a.py\n- command: python3 b.py\n\
                 - command: cat /out/a\ndags:\n- 1 >> 3\n- 2 >> 3\n",
            ),
        ),
    ]
}

#[test]
fn the_checks_hold_for_well_formed_inputs_and_the_decoder_takes_one_encoding() {
    for (target, name, bytes) in seeds() {
        let check = TARGETS.iter().find(|(t, _)| *t == target).unwrap().1;
        assert!(std::panic::catch_unwind(|| check(&bytes)).is_ok(), "{target}/{name}");
    }
    // A second encoding of a valid batch, one trailing byte longer, does
    // not decode (so the fuzz check's round trip has nothing to compare).
    let mut trailing = canonical::to_bytes(&vec![tx(1)]);
    trailing.push(0);
    assert!(canonical::from_bytes::<Vec<SignedTx>>(&trailing, "t").is_err(), "a trailing byte was accepted");
    fuzzing::signed_txs(&trailing);
    let parsed = leasehold_workflow::Workflow::parse("jobs:\n- command: x\ndags:\n- 1 >> 1\n");
    assert!(parsed.is_err(), "a job that depends on itself parsed");
}

/// Writes the seed corpus: `cargo test --release --workspace --test
/// fuzz_regressions -- --ignored write_seeds`.
#[test]
#[ignore]
fn write_seeds() {
    for (target, name, bytes) in seeds() {
        let path = fuzz_dir().join("seeds").join(target).join(name);
        leasehold_files::durable::write_atomic(&path, &bytes, 0o644).unwrap();
    }
}

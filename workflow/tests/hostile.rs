//! Hostile jobs against the real sandbox. Each test makes an attack that
//! would work without the protection it names, proves where it can that
//! the attack itself is sound (it works on the host), and then shows that
//! it fails from inside a job. Markers live outside `/tmp` (which a job
//! never shares), so that a hidden `/tmp` cannot make a test pass.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use leasehold_files::Manifest;
use leasehold_workflow::exec::execute;
use leasehold_workflow::live::{LiveRun, Status, Stream};
use leasehold_workflow::sandbox::Mount;

/// A shared library whose constructor writes `marker` (a host path) and
/// says on stderr which uid loaded it (a root without DAC override could
/// write no file inside the sandbox, but its stderr is the job's log), and
/// a shell script that writes `marker` too.
fn plant_kit(dir: &Path, marker: &Path) {
    let src = dir.join("evil.c");
    let code = format!(
        "#include <stdio.h>\n#include <unistd.h>\n__attribute__((constructor)) static void pwn(void) {{ \
         FILE *f = fopen(\"{}\", \"w\"); if (f) {{ fputs(\"pwned\", f); fclose(f); }} \
         fprintf(stderr, \"preloaded as uid %d\\n\", (int)getuid()); }}\n",
        marker.display()
    );
    std::fs::write(&src, code).unwrap();
    let out = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(dir.join("evil.so"))
        .arg(&src)
        .output()
        .expect("a C compiler (scripts/test.sh installs one)");
    assert!(out.status.success(), "cc: {}", String::from_utf8_lossy(&out.stderr));
    std::fs::write(dir.join("evil.sh"), format!("echo pwned > {}\n", marker.display())).unwrap();
    for f in ["evil.so", "evil.sh"] {
        std::fs::set_permissions(dir.join(f), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

#[tokio::test]
async fn a_job_has_no_network_no_unix_socket_and_no_dns() {
    let Some(sb) = sandbox() else { return };
    attacks::no_network(sb).await;
}

#[tokio::test]
async fn a_job_is_an_unprivileged_uid_with_no_capabilities_and_no_inherited_files() {
    let Some(sb) = sandbox() else { return };
    attacks::unprivileged(sb).await;
}

#[tokio::test]
async fn a_job_cannot_read_the_nodes_keys_by_any_path() {
    let Some(sb) = sandbox() else { return };
    attacks::no_keys(sb).await;
}

#[tokio::test]
async fn nothing_in_a_jobs_env_runs_on_the_host() {
    let Some(sb) = sandbox() else { return };
    let host = host_dir();
    let marker = host.path().join("marker");
    let kit = volume_dir();
    plant_kit(kit.path(), &marker);
    // The kit works: loaded by a host process, the library writes the marker.
    let out = std::process::Command::new("/bin/true").env("LD_PRELOAD", kit.path().join("evil.so")).status().unwrap();
    assert!(out.success() && marker.exists(), "the planted library runs when a host process loads it");
    std::fs::remove_file(&marker).unwrap();

    // Job 1 plants the kit in the run's working directory; job 2 points
    // every variable a loader or shell honours at it, by its host path and
    // by its path inside the sandbox.
    let work = host.path().join("run/work");
    let mut plant = sh(1, "cp /data/v/evil.so /data/v/evil.sh ~/ && chmod 755 ~/evil.*", &[]);
    plant.mounts = vec![leasehold_workflow::sandbox::Mount {
        name: "v".into(),
        host: kit.path().to_path_buf(),
        path: "/data/v".into(),
    }];
    let mut use_it = sh(2, "echo ran", &[1]);
    let w = work.display();
    use_it.env = BTreeMap::from([
        ("LD_PRELOAD".into(), format!("/home/jovyan/evil.so {w}/evil.so")),
        ("LD_LIBRARY_PATH".into(), w.to_string()),
        ("BASH_ENV".into(), format!("{w}/evil.sh")),
        ("ENV".into(), format!("{w}/evil.sh")),
        ("PATH".into(), format!("{w}:/usr/bin:/bin")),
        ("GCONV_PATH".into(), w.to_string()),
    ]);
    let jobs = vec![plant, use_it];
    let live = live(host.path(), &jobs);
    sb.prepare_workdir(&live.work_dir(), leasehold_workflow::DEFAULT_WORKDIR, &[]).unwrap();
    let (status, reason) = execute(&plan(sb, jobs, 1), &live).await;
    assert_eq!(status, Status::Succeeded, "{reason:?} {:?}", all_output(&live, 1));
    assert!(work.join("evil.so").exists(), "the job did plant the library on the host");
    assert!(!marker.exists(), "code from a job's env ran on the host");
    // Inside, the library loads into the job itself (its own uid: the
    // attack is live), and into nothing that still had root.
    let log = all_output(&live, 2);
    assert!(log.iter().any(|l| l == "preloaded as uid 65534"), "LD_PRELOAD reached the job: {log:?}");
    assert!(!log.iter().any(|l| l == "preloaded as uid 0"), "a job's env ran code as root: {log:?}");
}

#[tokio::test]
async fn a_job_cannot_ptrace_make_namespaces_or_mount() {
    let Some(sb) = sandbox() else { return };
    let script = r#"sleep 30 & pid=$!
python3 -c "import ctypes,sys; c=ctypes.CDLL(None, use_errno=True); r=c.ptrace(16, int(sys.argv[1]), 0, 0); print('ptrace', r, ctypes.get_errno())" $pid
python3 -c "import ctypes; c=ctypes.CDLL(None, use_errno=True); r=c.ptrace(16, 1, 0, 0); print('ptrace1', r, ctypes.get_errno())"
unshare -U true && echo NAMESPACE-MADE
unshare -r -m true && echo NAMESPACE-MADE
python3 -c "import os; os.unshare(os.CLONE_NEWUSER); print('NAMESPACE-MADE')"
python3 -c "import os; os.unshare(os.CLONE_NEWNET); print('NAMESPACE-MADE')"
mount -t tmpfs none ~ && echo MOUNTED
grep Seccomp: /proc/self/status
kill $pid"#;
    let (_, lines, _) = sandboxed(sb, script, volume_dir().path()).await;
    assert!(lines.contains(&"ptrace -1 1".to_string()), "ptrace of a sibling: EPERM: {lines:?}");
    assert!(lines.contains(&"ptrace1 -1 1".to_string()), "ptrace of pid 1: EPERM: {lines:?}");
    assert!(!lines.iter().any(|l| l.contains("NAMESPACE-MADE") || l.contains("MOUNTED")), "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("Seccomp:") && l.ends_with('2')), "a filter is on: {lines:?}");
}

/// Every directory named `name` under the cgroup mounts: a job's group
/// must be gone once it ends.
fn cgroups_named(name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![(PathBuf::from("/sys/fs/cgroup"), 0)];
    while let Some((d, depth)) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) && depth < 4 {
                if e.file_name() == name {
                    found.push(e.path());
                }
                stack.push((e.path(), depth + 1));
            }
        }
    }
    found
}

/// Runs one hostile job and checks it was killed for `limit`, quickly, with
/// nothing of it left behind.
async fn killed_for(script: &str, limit: &str) -> Ran {
    let sb = sandbox().expect("checked by the caller");
    let t = Instant::now();
    let r = run(sb, vec![sh(1, script, &[])], 1).await;
    let j = job(&r.live, 1);
    assert_eq!(j.status, Status::Failed, "{:?}", all_output(&r.live, 1));
    assert_eq!(j.error.as_deref(), Some(format!("killed: {limit}").as_str()), "{:?}", all_output(&r.live, 1));
    assert!(t.elapsed() < Duration::from_secs(30), "killed within its limit, took {:?}", t.elapsed());
    let id = format!("{}-job1", r.live.record().id);
    assert!(cgroups_named(&id).is_empty(), "the job's cgroup is removed: {:?}", cgroups_named(&id));
    assert!(!r.live.dir().join("tmp/1").exists(), "its /tmp is removed");
    r
}

#[tokio::test]
async fn a_fork_bomb_is_stopped_by_the_process_limit() {
    if sandbox().is_none() {
        return;
    }
    killed_for("bomb() { bomb | bomb & }; bomb; sleep 20", "process limit 64 reached").await;
}

#[tokio::test]
async fn a_memory_bomb_is_stopped_by_the_memory_limit() {
    if sandbox().is_none() {
        return;
    }
    killed_for("python3 -c \"x = ' ' * (1 << 30); import time; time.sleep(20)\"", "memory limit 128 MiB reached").await;
}

#[tokio::test]
async fn filling_tmp_or_the_outputs_is_stopped_by_the_disk_limits() {
    if sandbox().is_none() {
        return;
    }
    let fill = |path: &str| format!("dd if=/dev/zero of={path} bs=1M count=100000 2>&1; sleep 20");
    killed_for(&fill("/tmp/fill"), "/tmp limit 16 MiB reached").await;
    let r =
        killed_for(&fill("$OUTPUT_DIR/fill"), "disk limit 32 MiB reached in the working and output directories").await;
    let (bytes, _) = leasehold_workflow::sandbox::dir_usage(&r.live.output_dir(), 10);
    assert!(bytes <= 32 << 20, "one file never passes RLIMIT_FSIZE: {bytes}");
    killed_for(&fill("$HOME/fill"), "disk limit 32 MiB reached in the working and output directories").await;
}

#[tokio::test]
async fn a_gigabyte_on_stdout_is_cut_at_the_log_limit_and_the_node_holds_little_of_it() {
    if sandbox().is_none() {
        return;
    }
    let r = killed_for("head -c 1073741824 /dev/zero | tr '\\0' x; sleep 20", "log limit 1 MiB per job reached").await;
    let file = std::fs::metadata(r.live.dir().join("logs.jsonl")).unwrap().len();
    assert!(file < 2 << 20, "the log file stops near the limit: {file} bytes");
    let lines = r.live.lines_from(0);
    assert!(lines.iter().any(|l| l.text.contains("the rest of job 1's output is dropped")), "it says so once");
    // Once the run ends, its memory goes, and a restart reads only the tail.
    r.live.evict_log();
    let loaded = LiveRun::load(r.live.dir()).unwrap();
    let last = lines.last().unwrap().seq;
    assert_eq!(loaded.lines_from(last).len(), 1, "the loaded run reads its log back from the file");
    // Without the limits, a gigabyte of output would pass through this
    // process's memory; the peak stays far below it.
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let peak_kib: u64 =
        status.lines().find_map(|l| l.strip_prefix("VmHWM:")).unwrap().trim().trim_end_matches(" kB").parse().unwrap();
    assert!(peak_kib < 512 * 1024, "the test process peaked at {peak_kib} KiB");
}

#[tokio::test]
async fn the_run_log_limit_stops_the_job_that_crosses_it() {
    let Some(sb) = sandbox() else { return };
    // Each job prints 0.9 MiB, under the job limit; the fifth crosses 4 MiB.
    let print = "head -c 943718 /dev/zero | tr '\\0' y";
    let jobs: Vec<_> = (1..=5).map(|n| sh(n, print, &if n > 1 { vec![n - 1] } else { vec![] })).collect();
    let r = run(sb, jobs, 1).await;
    assert_eq!(job(&r.live, 4).status, Status::Succeeded);
    assert_eq!(job(&r.live, 5).error.as_deref(), Some("killed: log limit 4 MiB per run reached"));
}

#[tokio::test]
async fn a_symlink_a_job_leaves_in_its_outputs_is_never_read_through() {
    let Some(sb) = sandbox() else { return };
    let host = host_dir();
    let secret = host.path().join("secret");
    std::fs::write(&secret, "5ec2e7").unwrap();
    let script = format!("ln -s {} $OUTPUT_DIR/secret && ln -s /etc/shadow $OUTPUT_DIR/shadow", secret.display());
    let (j, lines, r) = sandboxed(sb, &script, volume_dir().path()).await;
    assert_eq!(j.status, Status::Succeeded, "{lines:?}");
    let out = r.live.output_dir();
    assert!(std::fs::symlink_metadata(out.join("secret")).unwrap().file_type().is_symlink());
    let err = Manifest::of_dir(&out).expect_err("outputs holding a link are refused").to_string();
    assert!(err.contains("neither a regular file nor a directory"), "{err}");
}

/// A volume's mount point inside the working directory is the node's: a
/// job cannot remove, rename or write into it to leave a link there for
/// bubblewrap, which makes mount points as root, to follow for the next
/// job that mounts the volume.
#[tokio::test]
async fn a_job_cannot_swap_a_mount_point_in_the_home_for_a_link() {
    let Some(sb) = sandbox() else { return };
    let (vol, host) = (volume_dir(), host_dir());
    std::fs::write(vol.path().join("in.txt"), "leased\n").unwrap();
    let target = host.path().join("made-by-bwrap");
    let t = target.display();
    // The last swap replaces a directory on the way to a mount point: were
    // it to work, bubblewrap would make `uis` in the host directory.
    let h = host.path().display();
    let swap = format!(
        "rmdir uis; mv uis moved; rm -rf uis; chmod 777 uis; touch uis/planted; \
         ln -s /oldroot{t} uis/x; ln -sfn /oldroot{t} uis; ln -s /oldroot{t} data/uis; \
         mv data moved-data; ln -s /oldroot{h} data; echo tried"
    );
    let uis = |path: &str| vec![Mount { name: "uis".into(), host: vol.path().to_path_buf(), path: path.into() }];
    let mut reader = sh(2, "cat uis/in.txt", &[1]);
    reader.mounts = uis("/home/jovyan/uis");
    let mut inner = sh(3, "cat data/uis/in.txt", &[2]);
    inner.mounts = uis("/home/jovyan/data/uis");
    let r = run(sb, vec![sh(1, &swap, &[]), reader, inner], 1).await;
    let lines = all_output(&r.live, 1);
    assert!(lines.contains(&"tried".to_string()), "{lines:?}");
    assert_eq!(output(&r.live, 2, Stream::Stdout), ["leased"], "the next job still mounts the volume there");
    assert_eq!(output(&r.live, 3, Stream::Stdout), ["leased"], "and the one inside data/");
    assert!(!target.exists() && !host.path().join("uis").exists(), "nothing was made on the host through a link");
    let work = r.live.work_dir();
    for made in ["uis", "data", "data/uis"] {
        assert!(std::fs::symlink_metadata(work.join(made)).unwrap().is_dir(), "{made} is still a directory");
    }
    assert!(!work.join("moved").exists() && !work.join("moved-data").exists() && !work.join("uis/planted").exists());
}

/// Every process's command line, and the environment of every process
/// that is not the job's uid, as the host's root reads them.
fn host_process_texts() -> Vec<(String, Vec<u8>)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let p = e.path();
        if !e.file_name().to_string_lossy().chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        out.push((format!("{}/cmdline", p.display()), std::fs::read(p.join("cmdline")).unwrap_or_default()));
        if std::fs::metadata(&p).is_ok_and(|m| m.uid() != small_limits().job_uid) {
            out.push((format!("{}/environ", p.display()), std::fs::read(p.join("environ")).unwrap_or_default()));
        }
    }
    out
}

#[tokio::test]
async fn a_jobs_secret_is_on_no_command_line_and_in_no_root_process_and_never_logged() {
    let Some(sb) = sandbox() else { return };
    let value = format!("s3cr3t-{}", std::process::id());
    let secrets = leasehold_workflow::secrets::SecretEnv::new(vec![("API_KEY".into(), value.clone().into())]);
    // The job holds the value while the host looks (its own command line
    // names only the value's hash), then prints it.
    use sha2::Digest;
    let hash = hex::encode(sha2::Sha256::digest(value.as_bytes()));
    let check = format!("printf %s \"$API_KEY\" | sha256sum | grep -q {hash}");
    let job = sh(1, &format!("sleep 3; {check} && echo \"key: $API_KEY\""), &[]);
    let host = host_dir();
    let live = live(host.path(), std::slice::from_ref(&job));
    sb.prepare_workdir(&live.work_dir(), leasehold_workflow::DEFAULT_WORKDIR, &[]).unwrap();
    let plan = leasehold_workflow::exec::Plan { secrets, ..plan(sb, vec![job], 1) };
    let running = {
        let live = live.clone();
        tokio::spawn(async move { execute(&plan, &live).await })
    };
    let mut looked = 0;
    while !running.is_finished() {
        for (what, text) in host_process_texts() {
            assert!(!text.windows(value.len()).any(|w| w == value.as_bytes()), "{what} holds the secret");
        }
        looked += 1;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(looked > 10, "the host looked while the job ran");
    let (status, reason) = running.await.unwrap();
    assert_eq!(status, Status::Succeeded, "the job had the value: {reason:?} {:?}", all_output(&live, 1));
    assert_eq!(all_output(&live, 1), ["key: ***"], "the log masks it");
}

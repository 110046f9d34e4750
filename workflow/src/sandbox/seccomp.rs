//! The seccomp filter every job runs under: everything a data job needs is
//! allowed, and the calls that only serve to attack the kernel or leave the
//! sandbox fail with `EPERM`. Built once with seccompiler and handed to
//! bubblewrap (`--seccomp FD`) as raw BPF.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use nix::libc;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule, TargetArch,
};

/// Denied outright: debugging other processes, mounts and namespaces,
/// kernel keyrings, BPF and perf, userfaultfd (a favourite of kernel
/// exploits), io_uring (which bypasses this filter), modules, kexec, and
/// the host's clock, swap, accounting and reboot.
const DENIED: &[(&str, i64)] = &[
    ("ptrace", libc::SYS_ptrace),
    ("process_vm_readv", libc::SYS_process_vm_readv),
    ("process_vm_writev", libc::SYS_process_vm_writev),
    ("mount", libc::SYS_mount),
    ("umount2", libc::SYS_umount2),
    ("pivot_root", libc::SYS_pivot_root),
    ("chroot", libc::SYS_chroot),
    ("fsopen", libc::SYS_fsopen),
    ("fsmount", libc::SYS_fsmount),
    ("fsconfig", libc::SYS_fsconfig),
    ("move_mount", libc::SYS_move_mount),
    ("open_tree", libc::SYS_open_tree),
    ("mount_setattr", libc::SYS_mount_setattr),
    ("unshare", libc::SYS_unshare),
    ("setns", libc::SYS_setns),
    ("bpf", libc::SYS_bpf),
    ("perf_event_open", libc::SYS_perf_event_open),
    ("userfaultfd", libc::SYS_userfaultfd),
    ("keyctl", libc::SYS_keyctl),
    ("add_key", libc::SYS_add_key),
    ("request_key", libc::SYS_request_key),
    ("io_uring_setup", libc::SYS_io_uring_setup),
    ("io_uring_enter", libc::SYS_io_uring_enter),
    ("io_uring_register", libc::SYS_io_uring_register),
    ("init_module", libc::SYS_init_module),
    ("finit_module", libc::SYS_finit_module),
    ("delete_module", libc::SYS_delete_module),
    ("kexec_load", libc::SYS_kexec_load),
    ("kexec_file_load", libc::SYS_kexec_file_load),
    ("open_by_handle_at", libc::SYS_open_by_handle_at),
    ("name_to_handle_at", libc::SYS_name_to_handle_at),
    ("reboot", libc::SYS_reboot),
    ("swapon", libc::SYS_swapon),
    ("swapoff", libc::SYS_swapoff),
    ("acct", libc::SYS_acct),
    ("settimeofday", libc::SYS_settimeofday),
    ("clock_settime", libc::SYS_clock_settime),
    ("clock_adjtime", libc::SYS_clock_adjtime),
    ("adjtimex", libc::SYS_adjtimex),
    ("syslog", libc::SYS_syslog),
    ("quotactl", libc::SYS_quotactl),
    ("personality", libc::SYS_personality),
    ("fanotify_init", libc::SYS_fanotify_init),
    ("lookup_dcookie", libc::SYS_lookup_dcookie),
];

/// `clone` may start threads and processes, never namespaces: one rule per
/// flag, since a rule matches when all its conditions do.
const CLONE_NAMESPACE_FLAGS: &[u64] = &[
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWCGROUP as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
];

/// The names of the denied calls, for the run record.
pub fn denied_names() -> Vec<&'static str> {
    DENIED.iter().map(|(n, _)| *n).chain(["clone with namespace flags", "clone3"]).collect()
}

/// The filter as the bytes bubblewrap reads: `struct sock_filter` in the
/// machine's byte order, one after another. `None` on an architecture
/// seccompiler does not know.
pub fn program() -> Option<&'static [u8]> {
    static PROGRAM: OnceLock<Option<Vec<u8>>> = OnceLock::new();
    PROGRAM.get_or_init(|| build().map_err(|e| tracing::error!("cannot build the seccomp filter: {e}")).ok()).as_deref()
}

fn build() -> Result<Vec<u8>, seccompiler::BackendError> {
    let arch = TargetArch::try_from(std::env::consts::ARCH)?;
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = DENIED.iter().map(|(_, nr)| (*nr, Vec::new())).collect();
    let clone_rules = CLONE_NAMESPACE_FLAGS
        .iter()
        .map(|flag| {
            let c = SeccompCondition::new(0, SeccompCmpArgLen::Qword, SeccompCmpOp::MaskedEq(*flag), *flag)?;
            SeccompRule::new(vec![c])
        })
        .collect::<Result<Vec<_>, _>>()?;
    rules.insert(libc::SYS_clone, clone_rules);
    let deny = SeccompFilter::new(rules, SeccompAction::Allow, SeccompAction::Errno(libc::EPERM as u32), arch)?;
    let mut program: BpfProgram = deny.try_into()?;
    // clone3 passes its flags in memory, where no filter can read them:
    // ENOSYS makes the C library fall back to clone, which is checked.
    let enosys = ret(libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32);
    let mut head = vec![load_nr(), jump_if_eq(libc::SYS_clone3 as u32, 0, 1), enosys.clone()];
    if arch == TargetArch::x86_64 {
        // x32 calls carry this bit and would miss every rule above.
        head.extend([load_nr(), jump_if_ge(0x4000_0000, 0, 1), enosys]);
    }
    // Prepended: the instructions after keep their relative jumps.
    head.append(&mut program);
    Ok(head.iter().flat_map(encode).collect())
}

const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JMP_JEQ_K: u16 = 0x15;
const BPF_JMP_JGE_K: u16 = 0x35;
const BPF_RET_K: u16 = 0x06;

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> seccompiler::sock_filter {
    seccompiler::sock_filter { code, jt, jf, k }
}

/// Loads `seccomp_data.nr`, the syscall number, at offset 0.
fn load_nr() -> seccompiler::sock_filter {
    insn(BPF_LD_W_ABS, 0, 0, 0)
}

fn jump_if_eq(k: u32, jt: u8, jf: u8) -> seccompiler::sock_filter {
    insn(BPF_JMP_JEQ_K, jt, jf, k)
}

fn jump_if_ge(k: u32, jt: u8, jf: u8) -> seccompiler::sock_filter {
    insn(BPF_JMP_JGE_K, jt, jf, k)
}

fn ret(k: u32) -> seccompiler::sock_filter {
    insn(BPF_RET_K, 0, 0, k)
}

fn encode(f: &seccompiler::sock_filter) -> Vec<u8> {
    let mut b = Vec::with_capacity(8);
    b.extend(f.code.to_ne_bytes());
    b.extend([f.jt, f.jf]);
    b.extend(f.k.to_ne_bytes());
    b
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_filter_builds_for_this_machine() {
        let bytes = super::program().expect("a filter for this architecture");
        assert_eq!(bytes.len() % 8, 0);
        assert!(bytes.len() / 8 > super::DENIED.len(), "at least one instruction per denied call");
    }
}

//! Job secrets: values an org stores at its own node (`leasehold secret
//! set NAME`) and a workflow names under `secrets:`. The node hands them to
//! the run's jobs as environment variables inside the sandbox, never on a
//! command line, and masks them in the run's log. They are never in the
//! workflow, its bundle, the ledger, the run's record or an API answer, and
//! a run at another org's node (compute-to-data) receives none.
//!
//! This module holds what needs no node: the rules for names and values,
//! the values of one run ([`SecretEnv`]), and the log's [`Masker`].

use std::sync::Arc;

use zeroize::Zeroizing;

use crate::WorkflowError;

/// At most this many secrets stored at one node.
pub const MAX_SECRETS_PER_NODE: usize = 256;
/// At most this many named by one workflow.
pub const MAX_SECRETS_PER_WORKFLOW: usize = 32;
/// At most this many bytes in one value.
pub const MAX_SECRET_BYTES: usize = 4096;
/// At most this many bytes in a name.
pub const MAX_SECRET_NAME_BYTES: usize = 64;
/// What a masked value becomes in the log.
pub const MASK: &str = "***";

/// Names the sandbox sets itself, or the shell that hands the values over
/// treats as its own (its `export` would not set `RANDOM`, `SECONDS`, ...
/// or would reset them); and prefixes that change how programs load or
/// speak.
const RESERVED: &[&str] = &[
    "PATH",
    "HOME",
    "TMPDIR",
    "LANG",
    "OUTPUT_DIR",
    "VIRTUAL_ENV",
    "PWD",
    "OLDPWD",
    "SHLVL",
    "IFS",
    "ENV",
    "UID",
    "EUID",
    "PPID",
    "SHELLOPTS",
    "RANDOM",
    "SRANDOM",
    "SECONDS",
    "LINENO",
    "HISTCMD",
    "EPOCHSECONDS",
    "EPOCHREALTIME",
    "OPTIND",
    "OPTARG",
    "OPTERR",
    "GROUPS",
    "FUNCNAME",
    "DIRSTACK",
    "PIPESTATUS",
    "HOSTNAME",
];
const RESERVED_PREFIXES: &[&str] = &["BASH", "COMP_", "LC_", "VOLUME_", "LD_", "LEASEHOLD_"];

/// Why `name` cannot name a secret, as the fault of `field`, if it
/// cannot: upper-case letters, digits and `_`, starting with a letter, at
/// most 64 bytes, and none of the names the sandbox sets.
pub fn check_name(field: &str, name: &str) -> Result<(), WorkflowError> {
    let shape = !name.is_empty()
        && name.len() <= MAX_SECRET_NAME_BYTES
        && name.starts_with(|c: char| c.is_ascii_uppercase())
        && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if !shape {
        let why = format!(
            "a secret's name is 1 to {MAX_SECRET_NAME_BYTES} upper-case letters, digits and '_', starting with a letter"
        );
        return Err(WorkflowError::new(None, field, why));
    }
    if RESERVED.contains(&name) || RESERVED_PREFIXES.iter().any(|p| name.starts_with(p)) {
        let why = format!("{name} is a variable the sandbox sets or its shell keeps: choose another name");
        return Err(WorkflowError::new(None, field, why));
    }
    Ok(())
}

/// Why `value` cannot be a secret's value, as the fault of the field
/// `value`, if it cannot: 1 to 4096 bytes on one line (a log masks it line
/// by line), no NUL (an environment variable cannot hold one).
pub fn check_value(value: &str) -> Result<(), WorkflowError> {
    let invalid = |why: String| Err(WorkflowError::new(None, "value", why));
    if value.is_empty() || value.len() > MAX_SECRET_BYTES {
        return invalid(format!("a secret's value is 1 to {MAX_SECRET_BYTES} bytes"));
    }
    if value.contains(['\0', '\n', '\r']) {
        return invalid("a secret's value is one line with no NUL: encode a multi-line one (base64, say)".into());
    }
    Ok(())
}

/// The `secrets:` of a workflow: valid names, each once, at most 32, none
/// a job also sets in its `env:`.
pub(crate) fn check_workflow(names: &[String], jobs: &[crate::Job]) -> Result<(), WorkflowError> {
    if names.len() > MAX_SECRETS_PER_WORKFLOW {
        return Err(WorkflowError::new(None, "secrets", format!("at most {MAX_SECRETS_PER_WORKFLOW}")));
    }
    for (i, name) in names.iter().enumerate() {
        let field = format!("secrets[{i}]");
        check_name(&field, name)?;
        if names[..i].contains(name) {
            return Err(WorkflowError::new(None, &field, format!("{name} is named twice")));
        }
        if let Some(j) = jobs.iter().find(|j| j.env.contains_key(name)) {
            let why = format!("job {} sets {name} in its env: a secret's name may not be a job's variable", j.number);
            return Err(WorkflowError::new(None, &field, why));
        }
    }
    Ok(())
}

/// The values of the secrets one run's jobs receive, wiped from memory when
/// the last copy is dropped. Its `Debug` shows names only.
#[derive(Clone, Default)]
pub struct SecretEnv(Arc<Vec<(String, Zeroizing<String>)>>);

impl SecretEnv {
    /// `(name, value)` pairs, already checked by [`check_name`] and
    /// [`check_value`].
    pub fn new(pairs: Vec<(String, Zeroizing<String>)>) -> Self {
        Self(Arc::new(pairs))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(n, _)| n.as_str())
    }

    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// `NAME=value\0` for each, as the sandbox's reader takes them.
    pub fn nul_separated(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::new());
        for (n, v) in self.pairs() {
            out.extend_from_slice(n.as_bytes());
            out.push(b'=');
            out.extend_from_slice(v.as_bytes());
            out.push(0);
        }
        out
    }

    /// A masker for one stream of a step's output.
    pub fn masker(&self) -> Masker {
        let mut values: Vec<Zeroizing<Vec<u8>>> =
            self.0.iter().map(|(_, v)| Zeroizing::new(v.as_bytes().to_vec())).collect();
        // The longest first: a value that holds another is masked whole.
        values.retain(|v| !v.is_empty());
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.dedup();
        let longest = values.first().map_or(0, |v| v.len());
        Masker { values, longest, carry: Zeroizing::new(Vec::new()) }
    }
}

impl std::fmt::Debug for SecretEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

/// Replaces every secret value in a stream of output with `***`: each
/// stretch of bytes that occurrences cover, overlapping ones included, is
/// one mask. Output comes in pieces (a line, or part of a long one); a
/// value split between two pieces is caught by holding back the tail of a
/// piece that did not end its line: the longest value's length less one
/// byte, or back to the start of a masked stretch that runs on past it.
pub struct Masker {
    values: Vec<Zeroizing<Vec<u8>>>,
    longest: usize,
    carry: Zeroizing<Vec<u8>>,
}

/// Held back at most, however long a masked stretch runs on: past it the
/// stretch is logged masked as it stands, and the next piece is judged
/// alone (so at most the longest value less a byte of a value that
/// overlaps such a stretch may show).
const MAX_CARRY_BYTES: usize = 64 * 1024;

impl Masker {
    /// What may be logged of `piece` now; `line_ended` when it ends a line,
    /// or the stream.
    pub fn feed(&mut self, piece: &[u8], line_ended: bool) -> Vec<u8> {
        if self.values.is_empty() {
            return piece.to_vec();
        }
        let mut buf = Zeroizing::new(std::mem::take(&mut *self.carry));
        buf.extend_from_slice(piece);
        let covered = self.covered(&buf);
        // From `cut` on, a value might run on into the next piece; a
        // masked stretch across it is held back whole, to be judged with
        // what follows.
        let mut cut = if line_ended { buf.len() } else { buf.len().saturating_sub(self.longest - 1) };
        if cut < buf.len() && cut > 0 && covered[cut] && covered[cut - 1] {
            let start = covered[..cut].iter().rposition(|c| !c).map_or(0, |p| p + 1);
            if buf.len() - start <= MAX_CARRY_BYTES {
                cut = start;
            }
        }
        let mut out = Vec::with_capacity(cut);
        for (i, byte) in buf[..cut].iter().enumerate() {
            match covered[i] {
                true if i > 0 && covered[i - 1] => {}
                true => out.extend_from_slice(MASK.as_bytes()),
                false => out.push(*byte),
            }
        }
        self.carry.extend_from_slice(&buf[cut..]);
        out
    }

    /// Which bytes of `buf` some occurrence of a value covers.
    fn covered(&self, buf: &[u8]) -> Vec<bool> {
        let mut covered = vec![false; buf.len()];
        for i in 0..buf.len() {
            if let Some(v) = self.values.iter().find(|v| buf[i..].starts_with(v)) {
                covered[i..i + v.len()].iter_mut().for_each(|c| *c = true);
            }
        }
        covered
    }

    /// What is held back, masked: the end of the stream.
    pub fn finish(&mut self) -> Vec<u8> {
        self.feed(&[], true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(values: &[&str]) -> SecretEnv {
        SecretEnv::new(
            values.iter().enumerate().map(|(i, v)| (format!("S{i}"), Zeroizing::new(v.to_string()))).collect(),
        )
    }

    fn masked(env: &SecretEnv, pieces: &[(&str, bool)]) -> String {
        let mut m = env.masker();
        let mut out = Vec::new();
        for (p, ended) in pieces {
            out.extend(m.feed(p.as_bytes(), *ended));
        }
        out.extend(m.finish());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn every_occurrence_is_masked_the_longest_value_first() {
        let e = env(&["hunter2", "hunter2-long"]);
        assert_eq!(masked(&e, &[("a hunter2 b hunter2-long c\n", true)]), "a *** b *** c\n");
        assert_eq!(masked(&e, &[("hunter2 hunter2\n", true)]), "*** ***\n");
        assert_eq!(masked(&e, &[("hunter2hunter2\n", true)]), "***\n", "one stretch, one mask");
        assert_eq!(masked(&env(&[]), &[("hunter2\n", true)]), "hunter2\n", "nothing to mask");
    }

    #[test]
    fn overlapping_values_are_masked_whole_even_across_pieces() {
        let e = env(&["tok-1234", "1234-pass"]);
        assert_eq!(masked(&e, &[("a tok-1234-pass b\n", true)]), "a *** b\n");
        assert_eq!(masked(&e, &[("a tok-12", false), ("34-pa", false), ("ss b\n", true)]), "a *** b\n");
        assert_eq!(masked(&e, &[("a tok-1234-pa", false), ("ss b\n", true)]), "a *** b\n");
        // The bound: a stretch of overlapping occurrences longer than the
        // carry is logged masked as it stands, and at most the longest
        // value less a byte of its end may show.
        let long = env(&["aa"]);
        let text = "a".repeat(MAX_CARRY_BYTES + 10);
        assert_eq!(masked(&long, &[(&text, false), ("\n", true)]), "***a\n");
    }

    #[test]
    fn a_value_split_between_pieces_of_a_long_line_is_masked() {
        let e = env(&["s3cr3t-value"]);
        assert_eq!(masked(&e, &[("xxxxs3cr", false), ("3t-valueyy", false), ("\n", true)]), "xxxx***yy\n");
        // Held back, then the stream ends: what was held is logged.
        assert_eq!(masked(&e, &[("tail s3cr", false)]), "tail s3cr");
        assert_eq!(masked(&e, &[("a", false), ("s3cr3t-value", false)]), "a***");
    }

    #[test]
    fn names_and_values_are_checked() {
        assert!(check_name("name", "WANDB_API_KEY").is_ok());
        assert!(check_name("name", "UIDAI_KEY").is_ok(), "a reserved name is no prefix");
        for bad in [
            "",
            "lower",
            "1ABC",
            "A-B",
            "PATH",
            "LD_PRELOAD",
            "BASH_ENV",
            "VOLUME_X",
            "RANDOM",
            "LC_ALL",
            &"A".repeat(65),
        ] {
            assert_eq!(check_name("name", bad).map_err(|e| e.field), Err("name".into()), "{bad:?}");
        }
        assert!(check_value("x").is_ok());
        for bad in ["", "a\nb", "a\0b", &"x".repeat(MAX_SECRET_BYTES + 1)] {
            assert!(check_value(bad).is_err(), "{bad:?}");
        }
        assert_eq!(format!("{:?}", env(&["value"])), "[\"S0\"]", "Debug shows names only");
    }
}

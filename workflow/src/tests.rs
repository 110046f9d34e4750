use super::*;

const PROTOTYPE: &str = r#"
jobs:
- command: 'pwd'
- command: 'ls /home/jovyan/'
- command: 'ls -la /home/jovyan/uis'
  volumes:
  - id: '6de22e830ce4661cbeb6b9b2167c3f206dd946eb89beecd2f20bb17e85e64995'
    name: 'uis'
    path: '/home/jovyan/uis'
- command: 'ls'

# Job index starts at 1.
dags:
- 1 >> 2
- 1 >> 3
- 1 >> 4
"#;

fn parse_err(yaml: &str) -> WorkflowError {
    Workflow::parse(yaml).expect_err("should be rejected")
}

#[test]
fn the_prototypes_workflow_parses_unchanged() {
    let wf = Workflow::parse(PROTOTYPE).unwrap();
    assert_eq!(wf.jobs.len(), 4);
    assert_eq!(wf.edges, vec![(1, 2), (1, 3), (1, 4)]);
    assert_eq!(wf.jobs[2].volumes[0].path, "/home/jovyan/uis");
    assert_eq!(wf.order().unwrap()[0], 1);
    assert_eq!(wf.dependencies(3), vec![1]);
}

#[test]
fn plain_strings_extensions_and_chains() {
    let wf = Workflow::parse(
        "name: k\ncmd_mode: shell\noutputs: /out\njobs:\n- echo a\n- command: echo b\n  env: {K: '3'}\n  timeout: 5\n  image: python:3.11\n- echo c\ndags: ['1 >> 2 >> 3']\n",
    )
    .unwrap();
    assert_eq!((wf.name.as_str(), wf.cmd_mode, wf.outputs.as_deref()), ("k", CmdMode::Shell, Some("/out")));
    assert_eq!(wf.edges, vec![(1, 2), (2, 3)]);
    assert_eq!(wf.jobs[1].env["K"], "3");
    assert_eq!((wf.jobs[1].timeout_s, wf.jobs[1].image.as_deref()), (Some(5), Some("python:3.11")));
    assert_eq!(wf.order().unwrap(), vec![1, 2, 3]);
}

#[test]
fn an_unknown_job_number_is_named() {
    let e = parse_err("jobs: [a, b]\ndags: ['1 >> 3']\n");
    assert_eq!(e.to_string(), "dags: \"1 >> 3\" names job 3, but jobs are numbered 1 to 2");
    assert_eq!(parse_err("jobs: [a]\ndags: ['0 >> 1']\n").field, "dags");
    assert!(parse_err("jobs: [a, b]\ndags: ['1 > 2']\n").reason.contains("form"));
}

#[test]
fn a_cycle_is_rejected_naming_a_job_on_it() {
    let e = parse_err("jobs: [a, b, c]\ndags: ['1 >> 2', '2 >> 3', '3 >> 2']\n");
    assert_eq!((e.field.as_str(), e.job, e.field_path()), ("dags", None, "dags".to_string()));
    let text = e.to_string();
    assert!(text == "dags: job 2 is part of a cycle" || text == "dags: job 3 is part of a cycle", "{text}");
}

#[test]
fn jobs_work_in_the_workdir_the_workflow_names() {
    assert_eq!(Workflow::parse(PROTOTYPE).unwrap().workdir, "/home/jovyan", "jupyterflow's home by default");
    assert_eq!(Workflow::parse("workdir: /job\njobs: [ls]\n").unwrap().workdir, "/job");
    let e = parse_err("workdir: work\njobs: [ls]\n");
    assert_eq!((e.job, e.field.as_str()), (None, "workdir"));
    let e = parse_err("workdir: /tmp/w\njobs: [ls]\n");
    assert!(e.reason.contains("sandbox's /tmp"), "{e}");
    // A volume may be inside the home (the node makes its mount point), but
    // not on or above it, nor on, in or above the outputs: bubblewrap, as
    // root, would make its mount point there following a job's links.
    for (path, why) in [
        ("/home/jovyan", "would cover the working"),
        ("/home", "would cover the working"),
        ("/output/d", "overlaps the output"),
    ] {
        let e = parse_err(&format!("jobs:\n- command: ls\n  volumes:\n  - {{id: L1, name: d, path: {path}}}\n"));
        assert_eq!((e.job, e.field.as_str()), (Some(1), "volumes[0].path"));
        assert!(e.reason.contains(why), "{e}");
    }
    let e = parse_err("outputs: /home/jovyan/out\njobs: [ls]\n");
    assert_eq!(e.field, "workdir");
    assert!(e.reason.contains("overlaps the output directory"), "{e}");
    let e = parse_err("workdir: /output/x\njobs: [ls]\n");
    assert!(e.reason.contains("overlaps the output directory"), "{e}");
    // Nor above a directory of the sandbox's own.
    let e = parse_err("workdir: /run\njobs: [ls]\n");
    assert!(e.reason.contains("would cover the sandbox's /run/leasehold"), "{e}");
}

#[test]
fn requirements_and_tests_are_parsed_and_checked() {
    let wf = Workflow::parse(
        "requirements: env/req.txt\njobs: [python a.py]\ntests:\n- name: small\n  command: python a.py --check\n  fixtures: [{from: tests/uis, path: /home/jovyan/uis}]\n  exit_code: 2\n  output: ok\n  timeout: 5\n- command: 'true'\n",
    )
    .unwrap();
    assert_eq!(wf.requirements.as_deref(), Some("env/req.txt"));
    let t = &wf.tests[0];
    assert_eq!((t.name.as_str(), t.exit_code, t.output.as_deref(), t.timeout_s), ("small", 2, Some("ok"), 5));
    assert_eq!(t.fixtures[0], qc::Fixture { from: "tests/uis".into(), path: "/home/jovyan/uis".into() });
    assert_eq!((wf.tests[1].name.as_str(), wf.tests[1].exit_code, wf.tests[1].timeout_s), ("test 2", 0, 60));
    for (yaml, field, why) in [
        ("requirements: ../r.txt\njobs: [ls]\n", "requirements", "must be relative"),
        (
            "jobs: [ls]\ntests: [{command: ls, fixtures: [{from: /etc, path: /d}]}]\n",
            "tests[0].fixtures[0].from",
            "must be relative",
        ),
        (
            "jobs: [ls]\ntests: [{command: ls, fixtures: [{from: f, path: /output}]}]\n",
            "tests[0].fixtures[0].path",
            "overlaps the output",
        ),
        ("jobs: [ls]\ntests: [{command: ' '}]\n", "tests[0].command", "must not be empty"),
        ("jobs: [ls]\ntests: [{command: \"a 'b\"}]\n", "tests[0].command", "unbalanced quotes"),
        ("jobs: [ls]\ntests: [{command: ls, timeout: 0}]\n", "tests[0].timeout", "at least 1 second"),
    ] {
        let e = parse_err(yaml);
        assert_eq!((e.job, e.field.as_str()), (None, field), "{yaml}");
        assert!(e.reason.contains(why), "{yaml}: {e}");
    }
    assert!(parse_err("jobs: [ls]\ntests: [{command: ls, colour: red}]\n").reason.contains("unknown field"));
}

#[test]
fn mount_paths_must_be_absolute_unique_and_not_escape() {
    let vol = |p: &str| format!("jobs:\n- command: ls\n  volumes:\n  - {{id: L1, name: d, path: '{p}'}}\n");
    let e = parse_err(&vol("data/iris"));
    assert_eq!((e.job, e.field.as_str()), (Some(1), "volumes[0].path"));
    assert!(e.reason.contains("not an absolute path"));
    let e = parse_err(&vol("/home/../etc"));
    assert!(e.reason.contains("escapes"), "{e}");
    let two = "jobs:\n- command: ls\n  volumes:\n  - {id: L1, name: a, path: /d}\n  - {id: L2, name: b, path: /d/}\n";
    let e = parse_err(two);
    assert_eq!(e.field, "volumes[1].path");
    assert!(e.reason.contains("two volumes"));
    assert!(parse_err("outputs: out\njobs: [a]\n").reason.contains("absolute"));
}

#[test]
fn malformed_yaml_and_unknown_fields_are_clear() {
    assert_eq!(parse_err("jobs: [a\n").field, "workflow.yaml");
    assert!(parse_err("jobs: [a]\ncolour: red\n").reason.contains("unknown field"));
    assert!(parse_err("jobs: []\n").reason.contains("1 to"));
    assert_eq!(parse_err("jobs:\n- command: ' '\n").to_string(), "job 1: command: must not be empty");
}

#[test]
fn volumes_without_an_active_lease_are_named() {
    let wf = Workflow::parse(PROTOTYPE).unwrap();
    let e = wf.check_leases(|id| Err(format!("lease {id} expired at 2026-11-23T21:40:02.000Z"))).unwrap_err();
    assert_eq!((e.job, e.field.as_str()), (Some(3), "volumes[0].id"));
    assert!(e.reason.starts_with("lease 6de22e83"));
    wf.check_leases(|_| Ok::<(), String>(())).unwrap();
}

#[test]
fn secrets_are_named_by_valid_unique_names_no_job_sets() {
    let wf = Workflow::parse("jobs: [a]\nsecrets: [API_KEY, DB_PASSWORD]\n").unwrap();
    assert_eq!(wf.secrets, vec!["API_KEY", "DB_PASSWORD"]);
    assert!(Workflow::parse("jobs: [a]\n").unwrap().secrets.is_empty());
    let e = parse_err("jobs: [a]\nsecrets: [API_KEY, api_key]\n");
    assert_eq!(e.field_path(), "secrets[1]", "{e}");
    let e = parse_err("jobs: [a]\nsecrets: [API_KEY, API_KEY]\n");
    assert_eq!((e.field_path().as_str(), e.reason.as_str()), ("secrets[1]", "API_KEY is named twice"));
    let e = parse_err("jobs: [a, {command: b, env: {API_KEY: x}}]\nsecrets: [API_KEY]\n");
    assert_eq!(e.field_path(), "secrets[0]");
    assert!(e.reason.contains("job 2 sets API_KEY"), "{e}");
    assert_eq!(parse_err("jobs: [a]\nsecrets: [LD_PRELOAD]\n").field_path(), "secrets[0]");
    let many: Vec<String> = (0..33).map(|i| format!("S{i}")).collect();
    assert_eq!(parse_err(&format!("jobs: [a]\nsecrets: [{}]\n", many.join(", "))).field, "secrets");
}

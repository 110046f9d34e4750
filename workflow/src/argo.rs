//! The equivalent Argo Workflow manifest, for organisations that run on
//! Kubernetes: one DAG template, one container template per job, leased
//! volumes mounted read-only, and a deadline no later than the leases allow.
//! A workflow's `secrets:` become variables from the Kubernetes Secret
//! `leasehold-secrets`, which the org creates in its own cluster: the
//! manifest names keys, never values.

use serde_json::{json, Value};

use super::{CmdMode, Workflow};

/// The Kubernetes Secret a workflow's `secrets:` are read from.
pub const ARGO_SECRET: &str = "leasehold-secrets";

fn task(n: usize) -> String {
    format!("job-{n}")
}

/// A Kubernetes-safe volume name for a lease or dataset id.
fn volume_name(id: &str) -> String {
    let s: String = id.to_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    format!("lease-{}", &s[..s.len().min(50)]).trim_end_matches('-').to_string()
}

/// `deadline_s`, when given, becomes `activeDeadlineSeconds`: pass the time
/// left on the shortest lease the workflow mounts.
pub fn manifest(wf: &Workflow, default_image: &str, deadline_s: Option<u64>) -> Value {
    let mut volumes: Vec<Value> = Vec::new();
    for v in wf.jobs.iter().flat_map(|j| &j.volumes) {
        let name = volume_name(&v.id);
        if !volumes.iter().any(|x| x["name"] == name.as_str()) {
            volumes.push(json!({"name": name, "persistentVolumeClaim": {"claimName": v.id, "readOnly": true}}));
        }
    }
    let tasks: Vec<Value> = wf
        .jobs
        .iter()
        .map(|j| {
            let deps: Vec<String> = wf.dependencies(j.number).into_iter().map(task).collect();
            json!({"name": task(j.number), "template": task(j.number), "dependencies": deps})
        })
        .collect();
    let mut templates = vec![json!({"name": "dag", "dag": {"tasks": tasks}})];
    for j in &wf.jobs {
        let command: Vec<String> = match wf.cmd_mode {
            CmdMode::Shell => vec!["sh".into(), "-c".into(), j.command.clone()],
            CmdMode::Exec => j.command.split_whitespace().map(String::from).collect(),
        };
        let mounts: Vec<Value> = j
            .volumes
            .iter()
            .map(|v| json!({"name": volume_name(&v.id), "mountPath": v.path, "readOnly": true}))
            .collect();
        let mut env: Vec<Value> = j.env.iter().map(|(k, v)| json!({"name": k, "value": v})).collect();
        env.extend(
            wf.secrets
                .iter()
                .map(|k| json!({"name": k, "valueFrom": {"secretKeyRef": {"name": ARGO_SECRET, "key": k}}})),
        );
        let mut t = json!({
            "name": task(j.number),
            "container": {
                "image": j.image.as_deref().unwrap_or(default_image),
                "command": command,
                "env": env,
                "volumeMounts": mounts,
            },
        });
        if let Some(s) = j.timeout_s {
            t["activeDeadlineSeconds"] = json!(s);
        }
        templates.push(t);
    }
    let mut spec = json!({"entrypoint": "dag", "templates": templates, "volumes": volumes});
    if let Some(d) = deadline_s {
        spec["activeDeadlineSeconds"] = json!(d);
    }
    json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": format!("{}-", volume_name(&wf.name).trim_start_matches("lease-"))},
        "spec": spec,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dag_template_one_container_per_job_read_only_mounts_and_the_deadline() {
        let wf = Workflow::parse(
            "name: KMeans\njobs:\n- command: python3 km.py\n  volumes:\n  - {id: lease-ab12, name: iris, path: /data/iris}\n  timeout: 30\n- python3 summary.py\ndags: ['1 >> 2']\n",
        )
        .unwrap();
        let m = manifest(&wf, "python:3.11-slim", Some(120));
        assert_eq!(m["apiVersion"], "argoproj.io/v1alpha1");
        assert_eq!(m["kind"], "Workflow");
        assert_eq!(m["spec"]["activeDeadlineSeconds"], 120);
        let templates = m["spec"]["templates"].as_array().unwrap();
        assert_eq!(templates.len(), 3, "the DAG and one per job");
        assert_eq!(templates[0]["dag"]["tasks"][1]["dependencies"], json!(["job-1"]));
        let mount = &templates[1]["container"]["volumeMounts"][0];
        assert_eq!((mount["mountPath"].as_str(), mount["readOnly"].as_bool()), (Some("/data/iris"), Some(true)));
        assert_eq!(m["spec"]["volumes"][0]["persistentVolumeClaim"]["readOnly"], true);
        assert_eq!(templates[1]["activeDeadlineSeconds"], 30);
        assert_eq!(templates[2]["container"]["command"], json!(["python3", "summary.py"]));
    }

    #[test]
    fn secrets_are_read_from_the_clusters_secret_by_name() {
        let wf = Workflow::parse("secrets: [API_KEY]\njobs: [a, b]\n").unwrap();
        let m = manifest(&wf, "python:3.11-slim", None);
        let want = json!([{"name": "API_KEY", "valueFrom": {"secretKeyRef": {"name": ARGO_SECRET, "key": "API_KEY"}}}]);
        for t in 1..=2 {
            assert_eq!(m["spec"]["templates"][t]["container"]["env"], want);
        }
    }
}

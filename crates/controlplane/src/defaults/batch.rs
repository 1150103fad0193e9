//! `batch/v1` defaults: Jobs (including the selector upstream generates from the Job's
//! uid) and CronJobs.

use super::{child, existing, or_set, or_set_str, pod_spec};
use serde_json::{json, Map, Value};

/// The label keys upstream's Job strategy puts on the pod template and the selector.
const CONTROLLER_UID: &str = "batch.kubernetes.io/controller-uid";
const LEGACY_CONTROLLER_UID: &str = "controller-uid";
const JOB_NAME: &str = "batch.kubernetes.io/job-name";
const LEGACY_JOB_NAME: &str = "job-name";

/// Applies the batch group's defaults for `kind`.
pub(super) fn on_write(kind: &str, object: &mut Value) {
    let Some(map) = object.as_object_mut() else {
        return;
    };
    match kind {
        "Job" => job(map),
        "CronJob" => cron_job(map),
        _ => {}
    }
}

/// `SetDefaults_Job` and the Job strategy's generated selector.
fn job(job: &mut Map<String, Value>) {
    let meta = job.get("metadata");
    let uid = meta
        .and_then(|m| m.get("uid"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let Some(spec) = existing(job, "spec") else {
        return;
    };
    let unset = |spec: &Map<String, Value>, key: &str| spec.get(key).is_none_or(Value::is_null);
    if unset(spec, "completions") && unset(spec, "parallelism") {
        spec.insert("completions".into(), json!(1));
        spec.insert("parallelism".into(), json!(1));
    }
    or_set(spec, "parallelism", json!(1));
    or_set_str(spec, "completionMode", "NonIndexed");
    let per_index = !unset(spec, "backoffLimitPerIndex")
        && spec.get("completionMode").and_then(Value::as_str) == Some("Indexed");
    or_set(
        spec,
        "backoffLimit",
        json!(if per_index { i32::MAX } else { 6 }),
    );
    or_set(spec, "suspend", json!(false));
    let replacement = if unset(spec, "podFailurePolicy") {
        "TerminatingOrFailed"
    } else {
        "Failed"
    };
    or_set(spec, "podReplacementPolicy", json!(replacement));
    if spec.get("manualSelector").and_then(Value::as_bool) != Some(true) {
        if let (Some(uid), Some(name)) = (uid, name) {
            generate_selector(spec, &uid, &name);
        }
    }
    pod_spec::template_at(spec, "template");
}

/// Upstream's `generateSelector`: the pod template carries the Job's uid and name labels,
/// and an unset selector matches the uid.
fn generate_selector(spec: &mut Map<String, Value>, uid: &str, name: &str) {
    if let Some(labels) = child(spec, "template")
        .and_then(|t| child(t, "metadata"))
        .and_then(|m| child(m, "labels"))
    {
        for (key, value) in [
            (LEGACY_CONTROLLER_UID, uid),
            (LEGACY_JOB_NAME, name),
            (CONTROLLER_UID, uid),
            (JOB_NAME, name),
        ] {
            labels.entry(key).or_insert_with(|| json!(value));
        }
    }
    or_set(
        spec,
        "selector",
        json!({"matchLabels": {CONTROLLER_UID: uid}}),
    );
}

/// `SetDefaults_CronJob` and its job template's pod template.
fn cron_job(cron_job: &mut Map<String, Value>) {
    let Some(spec) = existing(cron_job, "spec") else {
        return;
    };
    or_set_str(spec, "concurrencyPolicy", "Allow");
    or_set(spec, "suspend", json!(false));
    or_set(spec, "successfulJobsHistoryLimit", json!(3));
    or_set(spec, "failedJobsHistoryLimit", json!(1));
    if let Some(job_spec) = existing(spec, "jobTemplate").and_then(|t| existing(t, "spec")) {
        pod_spec::template_at(job_spec, "template");
    }
}

#[cfg(test)]
mod tests {
    use crate::defaults::{on_write, test_support::def};
    use serde_json::json;

    #[test]
    fn job_defaults_and_generated_selector() {
        let mut job = json!({"metadata": {"name": "pi", "uid": "u-1"}, "spec": {"template": {"spec": {
            "restartPolicy": "Never", "containers": [{"name": "c", "image": "perl:5"}]}}}});
        on_write(&def("batch", "v1", "jobs"), &mut job);
        let spec = &job["spec"];
        assert_eq!(spec["completions"], 1);
        assert_eq!(spec["parallelism"], 1);
        assert_eq!(spec["backoffLimit"], 6);
        assert_eq!(spec["completionMode"], "NonIndexed");
        assert_eq!(spec["suspend"], false);
        assert_eq!(spec["podReplacementPolicy"], "TerminatingOrFailed");
        assert_eq!(
            spec["selector"],
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}})
        );
        assert_eq!(
            spec["template"]["metadata"]["labels"],
            json!({
            "controller-uid": "u-1", "job-name": "pi",
            "batch.kubernetes.io/controller-uid": "u-1", "batch.kubernetes.io/job-name": "pi"})
        );
        assert_eq!(spec["template"]["spec"]["restartPolicy"], "Never");
        assert!(spec.get("manualSelector").is_none());
    }

    #[test]
    fn job_keeps_manual_selectors_and_parallelism_alone() {
        let mut job = json!({"metadata": {"name": "j", "uid": "u"}, "spec": {
            "manualSelector": true, "selector": {"matchLabels": {"a": "b"}}, "parallelism": 3,
            "template": {"metadata": {"labels": {"a": "b"}}}}});
        on_write(&def("batch", "v1", "jobs"), &mut job);
        assert!(job["spec"].get("completions").is_none());
        assert_eq!(job["spec"]["parallelism"], 3);
        assert_eq!(job["spec"]["selector"], json!({"matchLabels": {"a": "b"}}));
        assert_eq!(
            job["spec"]["template"]["metadata"]["labels"],
            json!({"a": "b"})
        );
    }

    #[test]
    fn cron_job_defaults() {
        let mut cj = json!({"spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}}}});
        on_write(&def("batch", "v1", "cronjobs"), &mut cj);
        assert_eq!(cj["spec"]["concurrencyPolicy"], "Allow");
        assert_eq!(cj["spec"]["suspend"], false);
        assert_eq!(cj["spec"]["successfulJobsHistoryLimit"], 3);
        assert_eq!(cj["spec"]["failedJobsHistoryLimit"], 1);
        assert_eq!(
            cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["dnsPolicy"],
            "ClusterFirst"
        );
        assert!(cj["spec"]["jobTemplate"]["spec"]
            .get("backoffLimit")
            .is_none());
    }
}

use super::{Bundle, Finding, Rule, Severity};

pub const RULE: Rule = Rule {
    id: "service-account-token",
    severity: Severity::Warning,
    description: "a workload whose service account is bound to no Role or ClusterRole does not mount an API token (automountServiceAccountToken: false)",
    check,
};

fn check(bundle: &Bundle, out: &mut Vec<Finding>) {
    for workload in bundle.workloads() {
        let spec = workload.template.spec.as_ref();
        let account = spec
            .and_then(|s| s.service_account_name.as_deref())
            .unwrap_or("default");
        let set_in_pod = spec.and_then(|s| s.automount_service_account_token);
        let set_in_account = bundle
            .named("ServiceAccount", account, workload.entry)
            .first()
            .and_then(|e| e.extract.automount_token);
        if set_in_pod.or(set_in_account) == Some(false) || is_bound(bundle, account, workload.entry)
        {
            continue;
        }
        out.push(RULE.finding(
            workload.entry,
            format!("mounts an API token of service account `{account}`, which no RoleBinding or ClusterRoleBinding of the bundle grants anything: set automountServiceAccountToken: false in the pod template"),
        ));
    }
}

/// Whether a RoleBinding or ClusterRoleBinding of the bundle names the service account.
fn is_bound(bundle: &Bundle, account: &str, near: &crate::validate::bundle::Entry) -> bool {
    bundle
        .entries
        .iter()
        .filter(|e| matches!(e.kind.as_str(), "RoleBinding" | "ClusterRoleBinding"))
        .flat_map(|e| &e.extract.subjects)
        .any(|subject| {
            subject.kind.as_deref() == Some("ServiceAccount")
                && subject.name.as_deref() == Some(account)
                && subject
                    .namespace
                    .as_deref()
                    .is_none_or(|n| near.namespace.as_deref().is_none_or(|m| m == n))
        })
}

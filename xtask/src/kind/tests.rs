//! The plan (what `--plan` prints and the executor runs) from settings and a recorded render of
//! an e2e overlay.

use std::path::Path;

use super::plan::{self, Step, Workload};
use super::*;
use camunda_conformance::cluster::deploy::Rollout;

fn args(line: &str) -> RunSettings {
    crate::cli::e2e_settings(line)
}

fn rendered() -> Vec<Value> {
    let text =
        std::fs::read_to_string(workspace_root().join("fixtures/kube/e2e-rendered.yaml")).unwrap();
    parse_documents(&text).unwrap()
}

/// Settings with an explicit overlay, so that these tests do not depend on manifests/.
fn settings(line: &str, backend: Backend) -> Settings {
    let line = format!("{line} --overlay /tmp/overlay");
    Settings::from_run(&args(&line), backend, Path::new("/tmp/artifacts")).unwrap()
}

#[test]
fn names_come_from_the_rendered_overlay() {
    let names = Names::from_docs(rendered()).unwrap();
    assert_eq!(
        (
            names.namespace.as_str(),
            names.deployment.as_str(),
            names.hpa.as_str()
        ),
        ("camunda", "camunda", "camunda")
    );
    let images: Vec<String> = names
        .project_images(Path::new("/images"))
        .into_iter()
        .map(|built| format!("{} {}", built.image, built.dockerfile.display()))
        .collect();
    // The sticky overlay runs no twemproxy, so only the Camunda image is the project's to build.
    assert_eq!(
        images,
        ["camunda-conformance/camunda:e2e /images/Dockerfile"]
    );
    assert_eq!(names.host.as_deref(), Some("camunda.test"));
    let rollout = |workload, name: &str, min_replicas| Rollout {
        workload,
        namespace: "camunda".into(),
        name: name.into(),
        min_replicas,
    };
    assert_eq!(
        names.rollouts,
        [
            rollout(Workload::Deployment, "camunda", Some(2)),
            rollout(Workload::StatefulSet, "postgres", None),
        ]
    );
    // ingress-shim's Certificate is named after the TLS secret.
    assert_eq!(
        names.certificates,
        vec![("camunda".to_string(), "camunda-tls".to_string())]
    );
    let needs: Vec<(String, Vec<String>)> = names
        .unprovided_secrets()
        .iter()
        .map(|s| (s.name.clone(), s.keys.iter().cloned().collect()))
        .collect();
    assert_eq!(
        needs,
        vec![
            ("camunda-admin".to_string(), vec!["password".to_string()]),
            (
                "camunda-db".to_string(),
                vec!["password".to_string(), "username".to_string()]
            ),
        ],
        "shipped Secrets are not generated; referenced ones are, with every key"
    );
}

#[test]
fn an_overlay_without_hpa_or_with_two_ingresses_is_refused_with_the_reason() {
    let mut docs = rendered();
    docs.retain(|d| d["kind"] != "HorizontalPodAutoscaler");
    let err = Names::from_docs(docs).err().unwrap().to_string();
    assert!(err.contains("HorizontalPodAutoscaler"), "{err}");

    let mut docs = rendered();
    let mut second = docs
        .iter()
        .find(|d| d["kind"] == "Ingress")
        .unwrap()
        .clone();
    second["metadata"]["name"] = "camunda-admin".into();
    docs.push(second);
    let err = Names::from_docs(docs).err().unwrap().to_string();
    assert!(
        err.contains("2 Ingresss") || err.contains("camunda, camunda-admin"),
        "{err}"
    );
}

#[test]
fn kind_plan_shows_every_command_pin_and_manifest() {
    let settings = settings(
        "e2e --backend kind --http-port 18080 --https-port 18443",
        Backend::Kind,
    );
    let names = Names::from_docs(rendered()).unwrap();
    let plan = plan::build(&settings, &names).unwrap();
    let text = plan.render(&settings, &names);

    // The cluster: pinned node image, label, host ports on loopback.
    assert!(text.contains(config::NODE_IMAGE), "{text}");
    assert!(
        text.contains("ingress-ready: 'true'") || text.contains("ingress-ready: \"true\""),
        "{text}"
    );
    assert!(
        text.contains("hostPort: 18443") && text.contains("hostPort: 18080"),
        "{text}"
    );
    assert!(text.contains("kind create cluster --name camunda-conformance --config /tmp/artifacts/kind-config.yaml"), "{text}");
    // The image, and the containerd fallback.
    assert!(
        text.contains("docker build --tag camunda-conformance/camunda:e2e --file"),
        "{text}"
    );
    assert!(
        text.contains(
            "kind load docker-image camunda-conformance/camunda:e2e --name camunda-conformance"
        ),
        "{text}"
    );
    assert!(
        text.contains("docker save --platform '<os/arch>' --output /tmp/artifacts/camunda-conformance_camunda_e2e.tar"),
        "{text}"
    );
    assert!(
        text.contains("kind load image-archive /tmp/artifacts/camunda-conformance_camunda_e2e.tar"),
        "{text}"
    );
    // Every addon file with its pin; the missing one says so.
    for addon in addons::ADDONS {
        for file in addon.files {
            assert!(
                text.contains(file.url),
                "{} missing from the plan",
                file.url
            );
            match file.sha256 {
                Some(sha) => assert!(text.contains(sha), "pin of {} missing", file.url),
                None => assert!(text.contains("MISSING"), "{text}"),
            }
        }
    }
    assert!(text.contains("--kubelet-insecure-tls"), "{text}");
    assert!(text.contains("nodeSelector ingress-ready"), "{text}");
    // The generated objects, in full.
    assert!(
        text.contains("kind: ClusterIssuer") && text.contains("name: camunda-conformance-ca"),
        "{text}"
    );
    assert!(text.contains("isCA: true"), "{text}");
    assert!(
        text.contains("kind: Prometheus") && text.contains("kubernetes.io/metadata.name: camunda"),
        "{text}"
    );
    // The overlay's objects, Secrets redacted.
    assert!(
        text.contains("image: camunda-conformance/camunda:e2e"),
        "{text}"
    );
    assert!(text.contains("kind: HorizontalPodAutoscaler"), "{text}");
    assert!(
        !text.contains("not-a-real-token"),
        "a Secret value reached the plan: {text}"
    );
    assert!(text.contains("Secret camunda/camunda-db: kept if present, else created with generated values for [password, username]"), "{text}");
    // Waits, bounded.
    assert!(
        text.contains("wait: Deployment camunda/camunda scaled to at least the HPA's minReplicas 2 and rolled out"),
        "{text}"
    );
    assert!(
        text.contains("wait: StatefulSet camunda/postgres rolled out"),
        "{text}"
    );
    assert!(
        text.contains("wait: Certificate camunda/camunda-tls Ready, at most 180s"),
        "{text}"
    );
    assert!(
        text.contains("wait: APIService v1beta1.metrics.k8s.io Available"),
        "{text}"
    );
    // Access and suites.
    assert!(
        text.contains("https://camunda.test:18443 resolved to 127.0.0.1:18443"),
        "{text}"
    );
    assert!(text.contains("camunda-conformance run --target /tmp/artifacts/target.toml --report-dir /tmp/artifacts"), "{text}");
    assert!(text.contains("[finally] teardown"), "{text}");
    assert!(
        text.contains("kind delete cluster --name camunda-conformance"),
        "{text}"
    );
}

#[test]
fn kind_steps_come_in_dependency_order() {
    let settings = settings("e2e --backend kind", Backend::Kind);
    let names = Names::from_docs(rendered()).unwrap();
    let plan = plan::build(&settings, &names).unwrap();
    let position =
        |pred: &dyn Fn(&Step) -> bool| plan.steps.iter().position(pred).expect("step present");
    let validate = position(&|s| matches!(s, Step::Validate { .. }));
    let cluster = position(&|s| matches!(s, Step::EnsureCluster { .. }));
    let load = position(&|s| matches!(s, Step::LoadImage { .. }));
    let cert_manager = position(
        &|s| matches!(s, Step::InstallAddon { addon, .. } if addon.name == "cert-manager"),
    );
    let ca = position(&|s| matches!(s, Step::Apply { what, .. } if what.starts_with("test CA")));
    let namespaces = position(
        &|s| matches!(s, Step::Apply { what, .. } if what.starts_with("the stack's namespaces")),
    );
    let secrets = position(&|s| matches!(s, Step::EnsureSecrets { .. }));
    let stack =
        position(&|s| matches!(s, Step::Apply { what, .. } if what.starts_with("the stack from")));
    let connect = position(&|s| matches!(s, Step::Connect));
    let suites = position(&|s| matches!(s, Step::RunSuites { .. }));
    assert!(
        validate < cluster && cluster < load && load < cert_manager,
        "validate, cluster, image, addons"
    );
    assert!(cert_manager < ca && ca < stack && stack < connect && connect < suites);
    assert!(
        namespaces < secrets && secrets < stack,
        "the generated Secrets need their namespace and come before the workloads"
    );
    assert!(matches!(plan.steps[0], Step::Preflight(ref tools) if tools.len() == 3));
}

#[test]
fn keep_leaves_the_cluster_and_reuse_changes_the_cluster_step() {
    let names = Names::from_docs(rendered()).unwrap();
    let kept = settings("e2e --backend kind --keep --reuse", Backend::Kind);
    let plan = plan::build(&kept, &names).unwrap();
    assert!(plan.finally.is_empty());
    let text = plan.render(&kept, &names);
    assert!(text.contains("if present: reuse it (--reuse)"), "{text}");
    assert!(!text.contains("kind delete cluster"), "{text}");
}

#[test]
fn existing_backend_installs_nothing_and_no_deploy_only_tests() {
    let names = Names::from_docs(rendered()).unwrap();
    let deploy = settings(
        "e2e --backend existing --context staging",
        Backend::Existing,
    );
    let text = plan::build(&deploy, &names)
        .unwrap()
        .render(&deploy, &names);
    assert!(
        !text.contains("kind ") && !text.contains("docker "),
        "{text}"
    );
    assert!(
        text.contains("CRD certificates.cert-manager.io Established"),
        "{text}"
    );
    assert!(text.contains("camunda-conformance validate"), "{text}");
    assert!(
        text.contains("camunda-conformance deploy --kube-context staging /tmp/overlay` does (server-side apply, field manager camunda-conformance, conflicts refused; creates no Secret)"),
        "{text}"
    );
    assert!(
        text.contains("Secret camunda/camunda-db: must exist already with keys [password, username], else stop before applying"),
        "{text}"
    );
    assert!(!text.contains("generated values"), "{text}");
    assert!(
        text.contains(
            "wait: Deployment camunda/camunda rolled out at the HPA's minReplicas 2 or more"
        ),
        "{text}"
    );
    assert!(text.contains("(context staging)"), "{text}");
    // An existing cluster's CA is the user's, never read from the cluster.
    assert!(text.contains("CA: the system's roots"), "{text}");

    let only_test = settings(
        "e2e --backend existing --context staging --no-deploy",
        Backend::Existing,
    );
    let plan = plan::build(&only_test, &names).unwrap();
    assert!(plan.steps.iter().all(|s| !matches!(
        s,
        Step::Apply { .. }
            | Step::Validate { .. }
            | Step::EnsureSecrets { .. }
            | Step::Deploy { .. }
    )));
    assert!(plan
        .steps
        .iter()
        .any(|s| matches!(s, Step::RunSuites { .. })));
    assert!(
        plan.finally.is_empty(),
        "an existing cluster is never deleted"
    );
}

#[test]
fn the_session_mode_picks_the_shipped_overlay() {
    let overlay = |line: &str| {
        Settings::from_run(&args(line), Backend::Kind, Path::new("/tmp/a"))
            .unwrap()
            .overlay
    };
    assert!(overlay("e2e --backend kind").ends_with("manifests/overlays/e2e"));
    assert!(overlay("e2e --backend kind --sessions shared-redis")
        .ends_with("manifests/overlays/e2e-shared"));
    assert_eq!(
        overlay("e2e --backend kind --overlay /x --sessions shared-redis"),
        Path::new("/x")
    );
}

#[test]
fn contradictory_flags_are_refused() {
    let err = |line: &str, backend| {
        Settings::from_run(&args(line), backend, Path::new("/tmp/a"))
            .err()
            .unwrap()
            .to_string()
    };
    assert!(err("e2e --backend existing", Backend::Existing).contains("--context"));
    assert!(err("e2e --backend kind --no-deploy", Backend::Kind).contains("--no-deploy"));
    assert!(err("e2e --backend kind --context x", Backend::Kind).contains("--context"));
    assert!(err(
        "e2e --backend kind --http-port 8443 --https-port 8443",
        Backend::Kind
    )
    .contains("differ"));
}

#[test]
fn every_addon_the_plan_names_is_in_the_table() {
    let settings = settings("e2e --backend kind", Backend::Kind);
    let names = Names::from_docs(rendered()).unwrap();
    let installed: Vec<&str> = plan::build(&settings, &names)
        .unwrap()
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::InstallAddon { addon, .. } => Some(addon.name),
            _ => None,
        })
        .collect();
    let table: Vec<&str> = addons::ADDONS.iter().map(|a| a.name).collect();
    assert_eq!(
        installed, table,
        "the plan installs every pinned addon, in the table's order"
    );
}

#[test]
fn kwok_plan_runs_the_deploy_path_on_a_local_control_plane() {
    let kwok = settings("e2e --backend kwok", Backend::Kwok);
    assert_eq!(kwok.context(), "kwok-camunda-conformance");
    let names = Names::from_docs(rendered()).unwrap();
    let plan = plan::build(&kwok, &names).unwrap();
    let text = plan.render(&kwok, &names);
    for expected in [
        "control plane: Kubernetes v1.36.3, etcd v3.6.8, kwok v0.8.0, metrics-server v0.9.0",
        "github.com/cert-manager/cert-manager@v1.21.1 deploy/crds",
        "the simulated node kwok-node-0",
        "wait: Node kwok-node-0 Ready",
        "wait: APIService v1beta1.metrics.k8s.io Available",
        "camunda-conformance validate /tmp/overlay",
        "scaled to at least the HPA's minReplicas 2",
        "cert-manager stand-in",
        "simulated pods: no ingress, port-forward or Prometheus",
        "[finally] stop the control plane",
    ] {
        assert!(text.contains(expected), "missing `{expected}`:\n{text}");
    }
    // Nothing of kind or Docker, and no cert-manager controller to wait for.
    assert!(
        !text.contains("docker") && !text.contains("kind create"),
        "{text}"
    );
    assert!(!text.contains("wait: Certificate"), "{text}");
    let kept = settings("e2e --backend kwok --keep", Backend::Kwok);
    let plan = plan::build(&kept, &names).unwrap();
    assert!(plan
        .render(&kept, &names)
        .contains("keep the control plane running (--keep)"));
}

#[test]
fn kwok_refuses_what_only_other_backends_do() {
    let err = |line: &str| {
        Settings::from_run(&args(line), Backend::Kwok, Path::new("/tmp/a"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    assert!(err("e2e --backend kwok --context x").contains("kwok-camunda-conformance"));
    assert!(err("e2e --backend kwok --no-deploy").contains("--no-deploy"));
    assert!(err("e2e --backend kwok --reuse").contains("--backend existing"));
}

#[test]
fn a_fork_gets_its_own_overlay_and_cibseven_is_refused() {
    let root = workspace_root();
    let work = Path::new("/tmp/artifacts");
    let operaton = Settings::from_run(&args("e2e --flavour operaton"), Backend::Kind, work)
        .expect("operaton settings");
    assert_eq!(
        operaton.overlay,
        root.join("manifests/overlays/e2e-operaton")
    );
    let shared = Settings::from_run(
        &args("e2e --flavour operaton --sessions shared-redis"),
        Backend::Kind,
        work,
    )
    .expect("shared operaton settings");
    assert_eq!(
        shared.overlay,
        root.join("manifests/overlays/e2e-shared-operaton")
    );
    let ce = Settings::from_run(&args("e2e"), Backend::Kind, work).expect("ce settings");
    assert_eq!(ce.overlay, root.join("manifests/overlays/e2e"));
    let err = Settings::from_run(&args("e2e --flavour cibseven"), Backend::Kind, work)
        .err()
        .expect("cibseven refused")
        .to_string();
    assert!(err.contains("Maven Central"), "{err}");
}

#[test]
fn the_operaton_image_is_built_with_its_flavour() {
    let docs: Vec<Value> = rendered()
        .into_iter()
        .map(|doc| {
            let text = serde_json::to_string(&doc).unwrap().replace(
                "camunda-conformance/camunda:e2e",
                "camunda-conformance/operaton:1.0.3",
            );
            serde_json::from_str(&text).unwrap()
        })
        .collect();
    let images = Names::from_docs(docs)
        .unwrap()
        .project_images(Path::new("/images"));
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].image, "camunda-conformance/operaton:1.0.3");
    assert_eq!(images[0].build_args, ["FLAVOUR=operaton"]);
    let cmd = cli::docker::build(
        &images[0].image,
        &images[0].dockerfile,
        &images[0].build_args,
        Path::new("/repo"),
    );
    let line = format!("{cmd}");
    assert!(
        line.contains("--build-arg FLAVOUR=operaton --file /images/Dockerfile /repo"),
        "{line}"
    );
}

#[test]
fn a_gateway_in_place_of_the_ingress_names_the_route_host_and_certificate() {
    let mut docs: Vec<Value> = rendered()
        .into_iter()
        .filter(|d| d["kind"] != "Ingress")
        .collect();
    docs.push(serde_json::json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": "camunda", "namespace": "camunda",
            "annotations": {"cert-manager.io/cluster-issuer": "camunda-conformance-ca"}},
        "spec": {"gatewayClassName": "traefik", "listeners": [
            {"name": "http", "protocol": "HTTP", "port": 80, "hostname": "camunda.test"},
            {"name": "https", "protocol": "HTTPS", "port": 443, "hostname": "camunda.test",
             "tls": {"certificateRefs": [{"name": "camunda-gw-tls"}]}},
        ]},
    }));
    let names = Names::from_docs(docs.clone()).unwrap();
    assert_eq!(names.route, ("Gateway", "camunda".to_string()));
    assert_eq!(names.host.as_deref(), Some("camunda.test"));
    assert!(
        names
            .certificates
            .contains(&("camunda".to_string(), "camunda-gw-tls".to_string())),
        "{:?}",
        names.certificates
    );
    // Without cert-manager's annotation the Secret is the team's own: nothing to issue.
    docs.last_mut().unwrap()["metadata"]["annotations"] = serde_json::json!({});
    let names = Names::from_docs(docs).unwrap();
    assert!(!names
        .certificates
        .iter()
        .any(|(_, s)| s == "camunda-gw-tls"));
}

#[test]
fn a_reused_node_converges_the_stack_only_and_stays_kept() {
    let work = tempfile::tempdir().unwrap();
    let line = "e2e --backend node --reuse --sessions shared-redis --route gateway";
    let reused = Settings::from_run(&args(line), Backend::Node, work.path()).unwrap();
    assert_eq!(
        reused.stack,
        "--sessions shared-redis --flavour ce --route gateway"
    );
    let plan = plan::build(&reused, &Names::from_docs(rendered()).unwrap()).unwrap();
    assert!(
        !plan.steps.iter().any(|s| matches!(s, Step::StartNode)),
        "a reused node is not started again"
    );
    assert!(plan.steps.iter().any(|s| matches!(s, Step::Connect)));
    assert!(matches!(
        plan.finally.as_slice(),
        [Step::ReleaseNode { keep: true }]
    ));
}

#[test]
fn faults_are_refused_on_the_cluster_backends_without_a_catalogue_before_anything_runs() {
    for backend in [Backend::Kind, Backend::Kwok, Backend::Existing] {
        let context = if backend == Backend::Existing {
            " --context c"
        } else {
            ""
        };
        let line = format!("e2e --faults{context} --overlay /tmp/overlay");
        let err = Settings::from_run(&args(&line), backend, Path::new("/tmp/a"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("injected on --backend local and --backend node"),
            "{backend:?}: {err}"
        );
    }
    let node = Settings::from_run(
        &args("e2e --faults --overlay /tmp/overlay"),
        Backend::Node,
        Path::new("/tmp/a"),
    );
    assert!(
        !format!("{:#}", node.err().unwrap_or_else(|| anyhow::anyhow!(""))).contains("--faults"),
        "the node injects its catalogue"
    );
}

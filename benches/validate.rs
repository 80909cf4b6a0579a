//! `cargo bench --bench validate` (wired as `cargo xtask bench validate`): time to validate the
//! shipped overlays and a generated bundle of 1,000 Deployment+Service+HPA+Ingress sets, with
//! rendering/reading and checking reported apart. Goal: checking 1,000 sets in < 100 ms on one
//! core (the checks are single-threaded).
//!
//! With `CAMUNDA_CONFORMANCE_BENCH_DIR` set (by `cargo xtask bench validate`), it also writes the
//! generated bundle there (`bundle.yaml`) and, for kubeconform, strict JSON schemas of the kinds
//! the bundle holds (`schemas/<kind>-<group>-<version>.json`) generated offline from the same
//! `k8s-openapi` types our `schema` rule uses, so that the side-by-side run needs no network.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use camunda_conformance::validate::bundle::{Bundle, Entry};
use camunda_conformance::validate::input::{parse_documents, RawObject};
use camunda_conformance::validate::{check, rules, validate_paths, Severity};

const SETS: usize = 1_000;
/// Ten times as many, in the same namespace: the checks must stay linear in the objects.
const LARGE_SETS: usize = 10_000;
const RUNS: usize = 5;
/// The corpus chart rendered for the helm-rendered input, its release name in the render, and
/// how many releases the bench bundle repeats.
const HELM_CHART: &str = "fixtures/validate/corpus/operaton";
const HELM_RELEASE: &str = "bench-release";
const HELM_RELEASES: usize = 1_000;

fn main() -> Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    println!(
        "{:<44} {:>8} {:>12} {:>12}",
        "input", "objects", "render ms", "check ms"
    );
    for overlay in ["e2e", "e2e-shared", "production-example"] {
        let path = root.join("manifests/overlays").join(overlay);
        let mut render = Vec::new();
        let mut checks = Vec::new();
        let mut objects = 0;
        for _ in 0..RUNS {
            let report = validate_paths(std::slice::from_ref(&path))
                .with_context(|| format!("validating {}", path.display()))?;
            // The e2e overlays leave their Secrets to the harness: out-of-band warnings only.
            let errors: Vec<_> = report
                .findings
                .iter()
                .filter(|f| f.severity == Severity::Error)
                .collect();
            ensure!(errors.is_empty(), "{overlay} has errors: {errors:?}");
            objects = report.inputs.iter().map(|i| i.objects).sum();
            render.push(Duration::from_millis(report.render_ms as u64));
            checks.push(Duration::from_millis(report.check_ms as u64));
        }
        row(
            &format!("manifests/overlays/{overlay}"),
            objects,
            median(render),
            median(checks),
        );
    }

    let text = generated_bundle(SETS);
    bench_generated(&text, SETS, true)?;
    let large = generated_bundle(LARGE_SETS);
    bench_generated(&large, LARGE_SETS, false)?;
    if let Some(dir) = std::env::var_os("CAMUNDA_CONFORMANCE_BENCH_DIR") {
        let dir = PathBuf::from(dir);
        write_inputs(&dir, &[(SETS, &text), (LARGE_SETS, &large)])?;
        write_helm_input(&root, &dir)?;
    }
    Ok(())
}

/// Parse and check times of a generated bundle, in process; `breakdown` also prints where the
/// checking time goes.
fn bench_generated(text: &str, sets: usize, breakdown_too: bool) -> Result<()> {
    let mut parse = Vec::new();
    let mut checks = Vec::new();
    let mut objects = 0;
    let mut findings = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        let parsed = parse_documents(text, "generated", None)?;
        parse.push(started.elapsed());
        objects = parsed.len();
        let started = Instant::now();
        findings = check(&parsed);
        checks.push(started.elapsed());
    }
    // Each set is clean but for one warning: its metrics port is scraped through the pod's
    // `prometheus.io/*` annotations, which assumes an annotation-based Prometheus.
    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    ensure!(
        errors == 0 && findings.len() == sets,
        "the generated bundle of {sets} sets has {errors} errors and {} findings (expected one warning a set)",
        findings.len()
    );
    let warm = median(checks.clone());
    row(
        &format!("generated {sets} sets (YAML parse = render)"),
        objects,
        median(parse),
        warm,
    );
    let goal = Duration::from_millis(100 * sets as u64 / 1_000);
    println!(
        "checking {sets} sets: first run {:.1} ms (cold caches), median {:.1} ms, {:.1} µs an object: {}",
        ms(checks[0]),
        ms(warm),
        ms(warm) * 1000.0 / objects as f64,
        if warm < goal {
            "within the goal of 100 ms per 1,000 sets"
        } else {
            "ABOVE the goal of 100 ms per 1,000 sets"
        }
    );
    if breakdown_too {
        breakdown(&parse_documents(text, "generated", None)?);
    }
    Ok(())
}

/// A public chart of the corpus rendered by `helm template` (the production values), then that
/// release repeated under `HELM_RELEASES` names (`helm-<n>.yaml`, `# Source:` lines kept): what a
/// team's CI renders, at a size worth timing. Also names the chart and values for the run on the
/// chart directory itself (`chart.txt`).
fn write_helm_input(root: &std::path::Path, dir: &std::path::Path) -> Result<()> {
    let entry = root.join(HELM_CHART);
    let chart = entry.join("chart");
    let values = entry.join("values-production.yaml");
    let output = std::process::Command::new("helm")
        .args(["template", "--skip-tests", HELM_RELEASE])
        .arg(&chart)
        .arg("--values")
        .arg(&values)
        .output()
        .context("running `helm template` (helm is needed for the helm-rendered input)")?;
    ensure!(
        output.status.success(),
        "helm template {} failed: {}",
        chart.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let rendered = String::from_utf8(output.stdout).context("helm's output is UTF-8")?;
    let mut bundle = String::new();
    for i in 0..HELM_RELEASES {
        bundle.push_str(&rendered.replace(HELM_RELEASE, &format!("r{i}")));
        bundle.push_str("\n---\n");
    }
    let file = dir.join(format!("helm-{HELM_RELEASES}.yaml"));
    std::fs::write(&file, bundle).with_context(|| format!("writing {}", file.display()))?;
    std::fs::write(
        dir.join("chart.txt"),
        format!("{}\n{}\n", chart.display(), values.display()),
    )?;
    println!(
        "wrote {} ({HELM_CHART} rendered by helm, {HELM_RELEASES} releases)",
        file.display()
    );
    Ok(())
}

/// The bundle and kubeconform's offline schemas (its `-schema-location` template
/// `{{ .ResourceKind }}{{ .KindSuffix }}.json`, strict: no property outside the schema).
fn write_inputs(dir: &std::path::Path, bundles: &[(usize, &str)]) -> Result<()> {
    use k8s_openapi::api::{
        apps::v1 as apps, autoscaling::v2 as autoscaling, core::v1 as core,
        networking::v1 as networking,
    };
    let schemas = dir.join("schemas");
    std::fs::create_dir_all(&schemas).with_context(|| format!("creating {}", schemas.display()))?;
    for (sets, bundle) in bundles {
        std::fs::write(dir.join(format!("bundle-{sets}.yaml")), bundle)?;
    }
    let files = [
        ("secret-v1", strict_schema::<core::Secret>()),
        ("serviceaccount-v1", strict_schema::<core::ServiceAccount>()),
        ("service-v1", strict_schema::<core::Service>()),
        ("deployment-apps-v1", strict_schema::<apps::Deployment>()),
        (
            "horizontalpodautoscaler-autoscaling-v2",
            strict_schema::<autoscaling::HorizontalPodAutoscaler>(),
        ),
        (
            "ingress-networking-v1",
            strict_schema::<networking::Ingress>(),
        ),
        (
            "networkpolicy-networking-v1",
            strict_schema::<networking::NetworkPolicy>(),
        ),
    ];
    for (name, schema) in files {
        std::fs::write(
            schemas.join(format!("{name}.json")),
            serde_json::to_vec(&schema)?,
        )?;
    }
    println!(
        "wrote the generated bundles and their schemas to {}",
        dir.display()
    );
    Ok(())
}

/// A standalone JSON schema (definitions included) in which every object with declared
/// properties admits no others, like the `-strict` schemas kubeconform downloads.
fn strict_schema<T: k8s_openapi::schemars::JsonSchema>() -> serde_json::Value {
    fn close(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                    map.insert("additionalProperties".into(), false.into());
                }
                map.values_mut().for_each(close);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(close),
            _ => {}
        }
    }
    let mut schema = k8s_openapi::schemars::SchemaGenerator::default()
        .into_root_schema_for::<T>()
        .to_value();
    close(&mut schema);
    schema
}

/// Where the checking time goes: schema typing, indexing, and the slowest rules.
fn breakdown(objects: &[RawObject]) {
    let started = Instant::now();
    let entries: Vec<Entry> = objects.iter().map(Entry::checked).collect();
    let schema_time = started.elapsed();
    let started = Instant::now();
    let bundle = Bundle::new(entries);
    let index_time = started.elapsed();
    let mut per_rule: Vec<(&str, Duration)> = rules::catalog()
        .iter()
        .map(|rule| {
            let started = Instant::now();
            let mut findings = Vec::new();
            (rule.check)(&bundle, &mut findings);
            (rule.id, started.elapsed())
        })
        .collect();
    let started = Instant::now();
    drop(bundle);
    let drop_time = started.elapsed();
    per_rule.sort_by_key(|(_, d)| std::cmp::Reverse(*d));
    let slowest: Vec<String> = per_rule
        .iter()
        .take(4)
        .map(|(id, d)| format!("{id} {:.1}", ms(*d)))
        .collect();
    println!(
        "breakdown (ms): schema {:.1}, index {:.1}, rules {:.1} (slowest: {}), freeing {:.1}",
        ms(schema_time),
        ms(index_time),
        ms(per_rule.iter().map(|(_, d)| *d).sum()),
        slowest.join(", "),
        ms(drop_time)
    );
}

fn row(name: &str, objects: usize, render: Duration, check: Duration) {
    println!(
        "{name:<44} {objects:>8} {:>12.1} {:>12.1}",
        ms(render),
        ms(check)
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

/// `sets` independent Camunda installations sharing one database Secret and one NetworkPolicy
/// (4,002 objects for 1,000 sets, about 2 MB); each is clean under every rule, so the timing
/// covers the full rule set rather than early exits.
fn generated_bundle(sets: usize) -> String {
    let mut out = String::from(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: camunda-db, namespace: bench}\nstringData: {username: camunda, password: bench}\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: camunda, namespace: bench}\nspec:\n  podSelector: {matchExpressions: [{key: app, operator: Exists}]}\n  policyTypes: [Ingress]\n  ingress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: ingress-nginx}}}], ports: [{port: http}]}]\n",
    );
    for i in 0..sets {
        out.push_str(&format!(
            r#"---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: camunda-{i}, namespace: bench, labels: {{app: camunda-{i}}}}}
spec:
  selector: {{matchLabels: {{app: camunda-{i}}}}}
  template:
    metadata: {{labels: {{app: camunda-{i}}}, annotations: {{prometheus.io/scrape: "true"}}}}
    spec:
      securityContext: {{runAsNonRoot: true, runAsUser: 1000}}
      automountServiceAccountToken: false
      containers:
        - name: camunda
          image: camunda-conformance/camunda:7.24.0
          ports: [{{name: http, containerPort: 8080}}, {{name: metrics, containerPort: 9404}}]
          env:
            - {{name: DB_URL, value: "jdbc:postgresql://db-{i}.example.com:5432/camunda"}}
            - name: DB_PASSWORD
              valueFrom: {{secretKeyRef: {{name: camunda-db, key: password}}}}
            - {{name: JMX_PROMETHEUS, value: "true"}}
            - {{name: SESSION_STORE, value: redis}}
          resources: {{requests: {{cpu: 500m, memory: 1Gi}}, limits: {{memory: 1536Mi}}}}
          startupProbe: {{httpGet: {{path: /engine-rest/engine, port: http}}, failureThreshold: 60}}
          readinessProbe: {{httpGet: {{path: /engine-rest/engine, port: http}}}}
          livenessProbe: {{httpGet: {{path: /engine-rest/engine, port: http}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: camunda-{i}, namespace: bench}}
spec:
  selector: {{app: camunda-{i}}}
  ports: [{{name: http, port: 8080, targetPort: http}}]
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {{name: camunda-{i}, namespace: bench}}
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: camunda-{i}}}
  minReplicas: 1
  maxReplicas: 1
  metrics: [{{type: Resource, resource: {{name: cpu, target: {{type: Utilization, averageUtilization: 70}}}}}}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: camunda-{i}
  namespace: bench
  annotations: {{cert-manager.io/cluster-issuer: ca}}
spec:
  ingressClassName: nginx
  tls: [{{hosts: [camunda-{i}.test], secretName: camunda-{i}-tls}}]
  rules:
    - host: camunda-{i}.test
      http:
        paths:
          - {{path: /, pathType: Prefix, backend: {{service: {{name: camunda-{i}, port: {{name: http}}}}}}}}
"#
        ));
    }
    out
}

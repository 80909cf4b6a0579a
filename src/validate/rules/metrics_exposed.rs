use k8s_openapi::api::core::v1::Container;

use super::{container_label, Bundle, Finding, Rule, Severity};
use crate::validate::bundle::{flavour, Flavour};
use crate::validate::env::Env;

pub const RULE: Rule = Rule {
    id: "metrics-exposed",
    severity: Severity::Error,
    description: "Camunda runs the Prometheus jmx_exporter agent (JMX_PROMETHEUS=true or a -javaagent option) and declares its port",
    check,
};

const DEFAULT_PORT: i32 = 9404;
const JVM_OPTION_VARIABLES: [&str; 4] = [
    "JAVA_OPTS",
    "JAVA_TOOL_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "CATALINA_OPTS",
];

/// The port the jmx_exporter agent listens on, if the container enables it.
pub fn metrics_port(env: &Env, container: &Container) -> Option<i32> {
    for variable in JVM_OPTION_VARIABLES {
        let agent = env.value(variable).and_then(|opts| {
            opts.split_whitespace()
                .find(|o| o.starts_with("-javaagent:") && o.contains("jmx_prometheus"))
        });
        if let Some(agent) = agent {
            // -javaagent:<jar>=[host:]<port>:<config>
            let parts: Vec<&str> = agent.split_once('=')?.1.split(':').collect();
            let port = if parts.len() >= 3 { parts[1] } else { parts[0] };
            return port.parse().ok();
        }
    }
    let image_switch = !container
        .image
        .as_deref()
        .map(flavour)
        .is_some_and(Flavour::is_run)
        && env
            .value("JMX_PROMETHEUS")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    image_switch.then(|| {
        env.value("JMX_PROMETHEUS_PORT")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or(DEFAULT_PORT)
    })
}

fn check(bundle: &Bundle, out: &mut Vec<Finding>) {
    for (workload, container) in bundle.camunda_workloads() {
        let env = Env::of(bundle, &workload, container);
        let message = match metrics_port(&env, container) {
            None if container.image.as_deref().map(flavour).is_some_and(Flavour::is_run) => format!(
                "{} exports no metrics: Camunda Run has no JMX_PROMETHEUS switch; add -javaagent:<jmx_prometheus_javaagent.jar>={DEFAULT_PORT}:<config> to JAVA_OPTS",
                container_label(container)
            ),
            None => format!(
                "{} exports no metrics: set JMX_PROMETHEUS=true to start the jmx_exporter agent on port {DEFAULT_PORT}",
                container_label(container)
            ),
            Some(port) => {
                let declared = container.ports.iter().flatten().any(|p| p.container_port == port);
                if declared {
                    continue;
                }
                format!(
                    "{} runs the metrics agent on port {port} but does not declare it: add containerPort {port} named `metrics`",
                    container_label(container)
                )
            }
        };
        out.push(RULE.finding(workload.entry, message));
    }
}

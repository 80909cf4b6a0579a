use super::{container_label, Bundle, Finding, Rule, Severity};
use crate::validate::env::Env;

pub const RULE: Rule = Rule {
    id: "memory-limit",
    severity: Severity::Warning,
    description:
        "the Camunda container has a memory limit, and the JVM heap (-Xmx or -XX:MaxRAMPercentage, in JAVA_OPTS and friends, command or args) leaves room below it",
    check,
};

const JVM_OPTION_VARIABLES: [&str; 4] = [
    "JAVA_OPTS",
    "JAVA_TOOL_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "CATALINA_OPTS",
];

fn check(bundle: &Bundle, out: &mut Vec<Finding>) {
    for (workload, container) in bundle.camunda_workloads() {
        let limit = container
            .resources
            .as_ref()
            .and_then(|r| r.limits.as_ref())
            .and_then(|l| l.get("memory"));
        let Some(limit) = limit else {
            out.push(RULE.finding(
                workload.entry,
                format!(
                    "{} has no memory limit: set resources.limits.memory and size the heap with -XX:MaxRAMPercentage",
                    container_label(container)
                ),
            ));
            continue;
        };
        let Some(limit_bytes) = quantity_bytes(&limit.0) else {
            continue;
        };
        let env = Env::of(bundle, &workload, container);
        let sources = JVM_OPTION_VARIABLES
            .iter()
            .filter_map(|variable| Some((variable.to_string(), env.value(variable)?.to_string())))
            .chain(
                [("command", &container.command), ("args", &container.args)]
                    .into_iter()
                    .filter_map(|(field, words)| {
                        Some((field.to_string(), words.as_ref()?.join(" ")))
                    }),
            );
        for (place, options) in sources {
            if let Some(problem) = heap_problem(&options, limit_bytes, &limit.0) {
                out.push(RULE.finding(
                    workload.entry,
                    format!("{}: {problem} (in {place})", container_label(container)),
                ));
            }
        }
    }
}

/// What is wrong with the heap the JVM options size against the memory limit, if anything: a
/// fixed -Xmx at or above the limit, or a MaxRAMPercentage leaving under a tenth of it for
/// everything but the heap (metaspace, thread stacks, direct buffers, the agent).
fn heap_problem(options: &str, limit_bytes: f64, limit: &str) -> Option<String> {
    let last = |prefix: &str| {
        options
            .split_whitespace()
            .filter_map(|o| o.strip_prefix(prefix))
            .next_back()
    };
    if let Some(heap) = last("-Xmx").and_then(jvm_size_bytes) {
        return (heap >= limit_bytes).then(|| {
            format!(
                "-Xmx ({} MiB) is not below the memory limit {limit}: the kernel kills the JVM before it collects; lower -Xmx or raise the limit",
                heap / (1024.0 * 1024.0)
            )
        });
    }
    let percentage = last("-XX:MaxRAMPercentage=").and_then(|p| p.parse::<f64>().ok())?;
    (percentage > MAX_RAM_PERCENTAGE).then(|| {
        format!(
            "-XX:MaxRAMPercentage={percentage} gives the heap more than {MAX_RAM_PERCENTAGE}% of the memory limit {limit}, leaving too little for metaspace, threads and buffers: the kernel kills the JVM; use 75 or less"
        )
    })
}

/// Above this share of the limit for the heap, the rest of the JVM no longer fits.
const MAX_RAM_PERCENTAGE: f64 = 90.0;

/// A Kubernetes memory quantity in bytes (`512Mi`, `1G`, `1e9`, `1073741824`).
fn quantity_bytes(text: &str) -> Option<f64> {
    const SUFFIXES: [(&str, f64); 12] = [
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
        ("Ti", 1099511627776.0),
        ("Pi", 1125899906842624.0),
        ("Ei", 1152921504606846976.0),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    let text = text.trim();
    for (suffix, factor) in SUFFIXES {
        if let Some(number) = text.strip_suffix(suffix) {
            return number.parse::<f64>().ok().map(|n| n * factor);
        }
    }
    if let Some(number) = text.strip_suffix('m') {
        return number.parse::<f64>().ok().map(|n| n / 1000.0);
    }
    text.parse::<f64>().ok()
}

/// A JVM size (`-Xmx2g`, `512m`, `1024k`, bytes).
fn jvm_size_bytes(text: &str) -> Option<f64> {
    let (number, factor) = match text.chars().last()? {
        'k' | 'K' => (&text[..text.len() - 1], 1024.0),
        'm' | 'M' => (&text[..text.len() - 1], 1048576.0),
        'g' | 'G' => (&text[..text.len() - 1], 1073741824.0),
        't' | 'T' => (&text[..text.len() - 1], 1099511627776.0),
        _ => (text, 1.0),
    };
    number.parse::<f64>().ok().map(|n| n * factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(quantity_bytes("1Gi"), Some(1073741824.0));
        assert_eq!(quantity_bytes("1500M"), Some(1.5e9));
        assert_eq!(jvm_size_bytes("1g"), Some(1073741824.0));
        assert_eq!(jvm_size_bytes("768m"), Some(768.0 * 1048576.0));
    }

    #[test]
    fn heap_against_the_limit() {
        let gib = 1073741824.0;
        assert!(heap_problem("-Xmx1g", gib, "1Gi").is_some());
        assert!(heap_problem("-Xmx768m", gib, "1Gi").is_none());
        assert!(heap_problem("-XX:MaxRAMPercentage=100.0", gib, "1Gi").is_some());
        assert!(heap_problem(
            "-XX:MaxRAMPercentage=75.0 -XX:+ExitOnOutOfMemoryError",
            gib,
            "1Gi"
        )
        .is_none());
        // A later flag wins, as in the JVM.
        assert!(heap_problem("-Xmx2g -Xmx512m", gib, "1Gi").is_none());
    }
}

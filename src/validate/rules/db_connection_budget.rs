use super::{Bundle, Finding, Rule, Severity};
use crate::validate::bundle::{flavour, image_repository, Flavour, Workload};
use crate::validate::env::{mounted_files, Env};

pub const RULE: Rule = Rule {
    id: "db-connection-budget",
    severity: Severity::Error,
    description: "the most Camunda pods (HPA maxReplicas) × pool size (DB_CONN_MAXACTIVE) fit in the PostgreSQL max_connections the bundle declares",
    check,
};

/// PostgreSQL's defaults for `max_connections` and `superuser_reserved_connections`.
const POSTGRES_DEFAULT_MAX: i64 = 100;
const POSTGRES_DEFAULT_RESERVED: i64 = 3;

struct Database<'a> {
    workload: Workload<'a>,
    max_connections: i64,
    reserved: i64,
    declared: bool,
    services: Vec<String>,
}

fn check(bundle: &Bundle, out: &mut Vec<Finding>) {
    let databases: Vec<Database> = bundle
        .workloads()
        .filter_map(|w| database(bundle, w))
        .collect();
    if databases.is_empty() {
        return;
    }
    for db in &databases {
        let mut total = 0;
        let mut parts = Vec::new();
        let mut first = None;
        for (workload, container) in bundle.camunda_workloads() {
            let env = Env::of(bundle, &workload, container);
            if !uses(&databases, db, &env) {
                continue;
            }
            let default_pool = match container.image.as_deref().map(flavour) {
                Some(Flavour::Run(_)) => 10, // Hikari's default
                _ => 20,                     // DB_CONN_MAXACTIVE default of the images
            };
            let pool = [
                "DB_CONN_MAXACTIVE",
                "SPRING_DATASOURCE_HIKARI_MAXIMUM_POOL_SIZE",
            ]
            .iter()
            .find_map(|v| env.value(v).and_then(|p| p.trim().parse::<i64>().ok()))
            .unwrap_or(default_pool);
            let pods = i64::from(bundle.max_pods(&workload));
            total += pods * pool;
            parts.push(format!(
                "{} {pods} pods × pool {pool}",
                workload.entry.resource()
            ));
            first.get_or_insert(workload);
        }
        let budget = db.max_connections - db.reserved;
        if let Some(workload) = first.filter(|_| total > budget) {
            let origin = if db.declared {
                "declared"
            } else {
                "PostgreSQL's default"
            };
            out.push(RULE.finding(
                workload.entry,
                format!(
                    "{} = {total} database connections exceed max_connections {} ({origin}) minus {} reserved of {}: lower the HPA's maxReplicas or DB_CONN_MAXACTIVE, or raise max_connections",
                    parts.join(" + "),
                    db.max_connections,
                    db.reserved,
                    db.workload.entry.resource()
                ),
            ));
        }
    }
}

/// The Camunda container talks to `db` when its JDBC URL names one of db's Services, or when the
/// URL is not visible and the bundle has only this database.
fn uses(databases: &[Database], db: &Database, env: &Env) -> bool {
    match env
        .value("DB_URL")
        .or_else(|| env.value("SPRING_DATASOURCE_URL"))
    {
        Some(url) => {
            let host = url
                .split("//")
                .nth(1)
                .and_then(|rest| rest.split([':', '/', '?']).next())
                .and_then(|host| host.split('.').next())
                .unwrap_or("");
            db.services.iter().any(|s| s == host)
        }
        None => databases.len() == 1,
    }
}

fn database<'a>(bundle: &'a Bundle, workload: Workload<'a>) -> Option<Database<'a>> {
    let container = workload.main_containers().find(|c| {
        c.image
            .as_deref()
            .is_some_and(|i| image_repository(i).contains("postgres"))
    })?;
    let env = Env::of(bundle, &workload, container);
    let args: Vec<&str> = container
        .command
        .iter()
        .flatten()
        .chain(container.args.iter().flatten())
        .map(String::as_str)
        .collect();
    let files = mounted_files(bundle, &workload, container);
    let setting = |name: &str, env_name: &str| -> Option<i64> {
        let from_args = args.iter().enumerate().find_map(|(i, arg)| {
            // `-c max_connections=200`, `-cmax_connections=200` or `--max_connections=200`
            let text = arg.trim_start_matches('-').trim_start_matches('c');
            let text = if text.is_empty() {
                args.get(i + 1)?
            } else {
                text
            };
            text.strip_prefix(name)?
                .strip_prefix('=')?
                .trim()
                .parse()
                .ok()
        });
        let from_env = env.value(env_name).and_then(|v| v.trim().parse().ok());
        let from_file = files.iter().find_map(|f| {
            f.content.lines().find_map(|line| {
                let line = line.split('#').next()?;
                let (key, value) = line.split_once('=')?;
                (key.trim() == name)
                    .then(|| value.trim().trim_matches('\'').parse().ok())
                    .flatten()
            })
        });
        from_args.or(from_env).or(from_file)
    };
    let max = setting("max_connections", "POSTGRESQL_MAX_CONNECTIONS");
    let reserved = setting(
        "superuser_reserved_connections",
        "POSTGRESQL_SUPERUSER_RESERVED_CONNECTIONS",
    );
    Some(Database {
        services: bundle
            .services_for(&workload)
            .iter()
            .map(|(e, _)| e.name().to_string())
            .collect(),
        workload,
        max_connections: max.unwrap_or(POSTGRES_DEFAULT_MAX),
        reserved: reserved.unwrap_or(POSTGRES_DEFAULT_RESERVED),
        declared: max.is_some(),
    })
}

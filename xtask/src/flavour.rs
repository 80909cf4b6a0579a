//! `--flavour`: which Camunda 7 line the stack runs. Camunda 7 CE ended with 7.24.0; Operaton and
//! CIB seven are the maintained forks. Each flavour is built from its own artifacts on Maven
//! Central by the same application source (fixtures/camunda-app, `-Dflavour=…`) and honours the
//! same environment contract; what differs is listed here, once, for every backend.

use anyhow::{bail, Result};
use clap::ValueEnum;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Flavour {
    /// Camunda 7 Community Edition 7.24.0 (org.camunda.bpm), the last CE release.
    #[default]
    Ce,
    /// Operaton 1.0.3 (org.operaton.bpm), a maintained fork of Camunda 7.
    Operaton,
    /// CIB seven (org.cibseven.bpm), a maintained fork of Camunda 7.
    Cibseven,
}

impl Flavour {
    /// The Maven profile switch (`-Dflavour=…`) and the folder name of its build.
    pub fn name(self) -> &'static str {
        match self {
            Flavour::Ce => "ce",
            Flavour::Operaton => "operaton",
            Flavour::Cibseven => "cibseven",
        }
    }

    /// What runs, for the first lines of a run and the README.
    pub fn describe(self) -> &'static str {
        match self {
            Flavour::Ce => "Camunda 7 CE 7.24.0 (org.camunda.bpm)",
            Flavour::Operaton => "Operaton 1.0.3 (org.operaton.bpm)",
            Flavour::Cibseven => "CIB seven (org.cibseven.bpm)",
        }
    }

    /// The webapps' context path: each line's own default
    /// (`<prefix>.bpm.webapp.application-path`).
    pub fn webapp_path(self) -> &'static str {
        match self {
            Flavour::Ce | Flavour::Cibseven => "/camunda",
            Flavour::Operaton => "/operaton",
        }
    }

    /// The REST API's path: `/engine-rest` in every line (Jersey's application path of the REST
    /// starter).
    pub fn rest_path(self) -> &'static str {
        "/engine-rest"
    }

    /// The jmx_exporter configuration (relative to the repository): the rules name the line's
    /// own MBean domains (`org.<line>.bpm.platform*`).
    pub fn jmx_config(self) -> &'static str {
        match self {
            Flavour::Ce | Flavour::Cibseven => "manifests/base/camunda/prometheus-jmx.yml",
            Flavour::Operaton => "manifests/components/flavour-operaton/prometheus-jmx.yml",
        }
    }

    /// The kustomize component that turns the CE base into this flavour (None: the base is CE).
    #[cfg(test)]
    pub fn component(self) -> Option<&'static str> {
        match self {
            Flavour::Ce | Flavour::Cibseven => None,
            Flavour::Operaton => Some("components/flavour-operaton"),
        }
    }

    /// The image the kind backend builds and loads for this flavour.
    pub fn image(self) -> &'static str {
        match self {
            Flavour::Ce => "camunda-conformance/camunda:7.24.0",
            Flavour::Operaton => "camunda-conformance/operaton:1.0.3",
            Flavour::Cibseven => "camunda-conformance/cibseven:2.0.0",
        }
    }

    /// Whether this flavour can be built from Maven Central; the reason when it cannot.
    pub fn ensure_available(self) -> Result<()> {
        if self == Flavour::Cibseven {
            bail!(
                "--flavour cibseven is not available: CIB seven's releases on Maven Central \
                 (org.cibseven.bpm 2.0.0: cibseven-engine, its BOMs and parent poms) hold no Spring \
                 Boot starter, REST API or webapps (org.cibseven.bpm.springboot:\
                 cibseven-bpm-spring-boot-starter-webapp/-rest and org.cibseven.bpm.webapp:* are \
                 absent there); CIB distributes those from its own repository \
                 (artifacts.cibseven.org), and this project builds from Maven Central only. Use \
                 --flavour ce or --flavour operaton."
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_cli_values_and_the_maven_switch() {
        for flavour in [Flavour::Ce, Flavour::Operaton, Flavour::Cibseven] {
            let value = flavour.to_possible_value().expect("a CLI value");
            assert_eq!(value.get_name(), flavour.name());
            assert_eq!(Flavour::from_str(flavour.name(), false), Ok(flavour));
        }
    }

    #[test]
    fn an_unknown_flavour_is_refused_with_the_choices() {
        let err = Flavour::from_str("zeebe", false).unwrap_err();
        assert!(err.contains("zeebe"), "{err}");
    }

    #[test]
    fn operaton_differs_in_webapp_path_and_metrics_config_only() {
        assert_eq!(Flavour::Ce.webapp_path(), "/camunda");
        assert_eq!(Flavour::Operaton.webapp_path(), "/operaton");
        assert_eq!(Flavour::Operaton.rest_path(), Flavour::Ce.rest_path());
        assert_ne!(Flavour::Operaton.jmx_config(), Flavour::Ce.jmx_config());
    }

    #[test]
    fn cibseven_is_refused_with_the_reason() {
        let err = Flavour::Cibseven
            .ensure_available()
            .unwrap_err()
            .to_string();
        assert!(err.contains("Maven Central"), "{err}");
        assert!(Flavour::Ce.ensure_available().is_ok());
        assert!(Flavour::Operaton.ensure_available().is_ok());
    }

    /// The fork's jmx_exporter rules are the base's with the MBean domains renamed, nothing
    /// else: the same series names on every line.
    #[test]
    fn operaton_jmx_rules_differ_from_the_base_in_the_domains_only() {
        let root = crate::artifacts::workspace_root();
        let read = |flavour: Flavour| {
            std::fs::read_to_string(root.join(flavour.jmx_config()))
                .expect("jmx config")
                .lines()
                .filter(|line| !line.starts_with('#'))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let base = read(Flavour::Ce);
        let operaton = read(Flavour::Operaton);
        assert!(operaton.contains("org.operaton.bpm.platform<type=executor-service>"));
        assert!(!operaton.contains("org.camunda"));
        assert_eq!(
            operaton,
            base.replace("org.camunda.bpm.platform", "org.operaton.bpm.platform")
        );
    }

    #[test]
    fn the_flavour_files_exist() {
        let root = crate::artifacts::workspace_root();
        for flavour in [Flavour::Ce, Flavour::Operaton] {
            assert!(root.join(flavour.jmx_config()).is_file(), "{flavour:?}");
            if let Some(component) = flavour.component() {
                assert!(
                    root.join("manifests")
                        .join(component)
                        .join("kustomization.yaml")
                        .is_file(),
                    "{flavour:?}"
                );
            }
        }
    }
}

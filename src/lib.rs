//! camunda-conformance: offline validation of Camunda 7 manifests (`validate`) and the live
//! suites against a running deployment (`run`).

pub mod cli;
pub mod cluster;
pub mod report;
pub mod run;
pub mod validate;

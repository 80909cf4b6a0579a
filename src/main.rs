use std::process::ExitCode;

fn main() -> ExitCode {
    camunda_conformance::cli::main()
}

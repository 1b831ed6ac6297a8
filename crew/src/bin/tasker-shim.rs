//! `tasker-shim`: the per-job helper the crew starts for every job. Not meant
//! to be run by hand; see `crew::engine::shim`.

fn main() -> std::process::ExitCode {
    crew::engine::shim::main()
}

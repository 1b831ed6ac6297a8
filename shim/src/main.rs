//! `tasker-shim`: the per-job helper the crew starts for every job. Not meant
//! to be run by hand; see `tasker_shim::shim`.

fn main() -> std::process::ExitCode {
    tasker_shim::shim::main()
}

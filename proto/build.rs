//! Compiles `proto/tasker/v1/*.proto` with protox (pure Rust): no system
//! `protoc` is needed to build Tasker.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/tasker/v1/tasker.proto"];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Output and stdin as `bytes::Bytes`: the crew hands the engine's
        // buffers to the stream without a copy.
        .bytes(".tasker.v1")
        .compile_fds(fds)?;
    Ok(())
}

//! Generates Rust types (and the operations API's gRPC server and client) from
//! proto/ferry/**/v1 with protox, so no system protoc is needed; the descriptor set is
//! kept for the API's server reflection.

use prost::Message as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = [
        "ferry/centra/v1/centra.proto",
        "ferry/order/v1/order.proto",
        "ferry/exception/v1/exception.proto",
        "ferry/erp/v1/erp.proto",
        "ferry/ops/v1/ops.proto",
    ];
    println!("cargo:rerun-if-changed={}", root.display());
    let fds = protox::compile(files, [&root])?;
    // Cargo tells a build script where to write through OUT_DIR: the one way it can.
    #[allow(clippy::disallowed_methods)]
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("ferry_descriptor.bin"), fds.encode_to_vec())?;
    let mut config = prost_build::Config::new();
    // Shared with the delivery it is decoded from instead of copied at every hop.
    config.bytes([".ferry.centra.v1.OrderSnapshot.snapshot_json"]);
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds_with_config(fds, config)?;
    Ok(())
}

//! Generates Rust types from proto/ferry/**/v1 with protox, so no system protoc is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = [
        "ferry/centra/v1/centra.proto",
        "ferry/order/v1/order.proto",
        "ferry/exception/v1/exception.proto",
        "ferry/erp/v1/erp.proto",
    ];
    println!("cargo:rerun-if-changed={}", root.display());
    let fds = protox::compile(files, [&root])?;
    prost_build::Config::new()
        // Shared with the delivery it is decoded from instead of copied at every hop.
        .bytes([".ferry.centra.v1.OrderSnapshot.snapshot_json"])
        .compile_fds(fds)?;
    Ok(())
}

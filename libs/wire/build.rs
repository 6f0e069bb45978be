//! Compiles `proto/kpr/v1/*.proto` with protox (pure Rust, no system protoc) and
//! generates prost messages and tonic services into OUT_DIR, plus the encoded file
//! descriptor set that gRPC server reflection serves.

use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read when the script runs, not baked in when it is compiled: a build script
    // compiled for another checkout sharing the target directory must not read that
    // checkout's protos.
    let proto_root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let files = [
        "kpr/v1/codes.proto",
        "kpr/v1/events.proto",
        "kpr/v1/ingest.proto",
        "kpr/v1/stats.proto",
    ];
    for file in &files {
        println!("cargo:rerun-if-changed={}", proto_root.join(file).display());
    }
    println!("cargo:rerun-if-changed={}", proto_root.display());

    let fds = protox::compile(files, [&proto_root])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("kpr_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // Undecodable requests are INVALID_ARGUMENT (src/grpc_codec.rs).
        .codec_path("crate::grpc_codec::KprCodec")
        .compile_fds(fds)?;
    Ok(())
}

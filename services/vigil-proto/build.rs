//! Generates the gRPC code from ../../proto (needs `protoc`: Debian's
//! protobuf-compiler) and the descriptor set for server reflection.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("vigil_descriptor.bin"))
        .compile_protos(
            &[
                "../../proto/vigil/v1/alarm.proto",
                "../../proto/vigil/v1/admin.proto",
                "../../proto/vigil/v1/reports.proto",
                "../../proto/vigil/v1/cameras.proto",
            ],
            &["../../proto"],
        )?;
    println!("cargo:rerun-if-changed=../../proto");
    Ok(())
}

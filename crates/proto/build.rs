//! Generate the Rust code for every `.proto` under `proto/` and one encoded descriptor set for
//! server reflection. protoc comes from `protoc-bin-vendored`, so cargo alone builds this on a
//! fresh machine.

use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time: `env!` would bake in the path of whichever checkout first compiled
    // this script, and a shared target dir would then read another checkout's protos.
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let mut protos = Vec::new();
    collect_protos(&root, &mut protos)?;
    protos.sort();

    // tonic-prost-build does not emit these itself.
    println!("cargo:rerun-if-changed={}", root.display());
    for proto in &protos {
        println!("cargo:rerun-if-changed={}", proto.display());
    }

    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let well_known = protoc_bin_vendored::include_path()?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    // prost-build finds protoc through PROTOC.
    set_protoc(&protoc);

    tonic_prost_build::configure()
        // RPCs a service has not implemented yet answer UNIMPLEMENTED (honest while its issue
        // is open) without a hand-written stub per method.
        .generate_default_stubs(true)
        // Smaller per-call buffers than prost's codec (src/codec.rs: idle streams' memory).
        .codec_path("crate::codec::LeanCodec")
        .file_descriptor_set_path(out_dir.join("echo_descriptor.bin"))
        .include_file("echo.rs")
        .compile_protos(&protos, &[root, well_known])?;
    Ok(())
}

fn collect_protos(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "proto") {
            out.push(path);
        }
    }
    Ok(())
}

#[allow(unsafe_code)]
fn set_protoc(protoc: &Path) {
    // SAFETY: a build script runs on one thread; nothing reads the environment concurrently.
    unsafe { std::env::set_var("PROTOC", protoc) };
}

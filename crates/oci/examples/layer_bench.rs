//! Writes one layer from a directory through the full pipeline (tar →
//! diff_id → compress → digest) into /dev/null and prints one line of
//! numbers; `bench/layers` runs it next to `pigz` and `gzip` on the same
//! data and measures its peak memory.
//!
//! `cargo run --release -p kiln-oci --example layer_bench -- DIR gzip|zstd|uncompressed [LEVEL]`

use kiln_oci::{entries_from_dir, write_layer, Compression, LayerOptions};
use std::path::PathBuf;
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: layer_bench DIR gzip|zstd|uncompressed [LEVEL]";
    let dir = PathBuf::from(args.next().expect(usage));
    let kind = args.next().expect(usage);
    let level = args.next();
    let compression = Compression::parse(&kind, level.as_deref()).unwrap_or_else(|e| {
        eprintln!("layer_bench: {e}");
        std::process::exit(2)
    });
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let entries = entries_from_dir(&dir).expect("reading the input directory");
    let options = LayerOptions {
        compression,
        threads,
        ..LayerOptions::default()
    };
    let start = Instant::now();
    let (desc, _) = write_layer(entries, &options, std::io::sink()).expect("writing the layer");
    println!(
        "seconds={:.3} blob_bytes={} threads={threads} diff_id={}",
        start.elapsed().as_secs_f64(),
        desc.size,
        desc.diff_id
    );
}

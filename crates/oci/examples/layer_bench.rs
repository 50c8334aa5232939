//! Layer write throughput: a compressible and an incompressible layer,
//! through every compression, on all cores.
//!
//! `cargo run --release -p kiln-oci --example layer_bench -- [MiB]`
//! (default 1024; `KILN_BENCH_MIB` works too). Output goes to /dev/null
//! through the full tar → diff_id → compress → digest pipeline.

use kiln_oci::{write_layer, Compression, LayerEntry, LayerOptions};
use std::time::Instant;

fn main() {
    let mib: usize = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("KILN_BENCH_MIB").ok())
        .map(|s| {
            s.parse()
                .unwrap_or_else(|_| panic!("size {s:?} is not a number of MiB"))
        })
        .unwrap_or(1024);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let file = 16 << 20;
    for (label, make) in [
        ("incompressible", random as fn(usize, u64) -> Vec<u8>),
        ("compressible", text),
    ] {
        // Files of 16 MiB each, inline, so the bench measures the pipeline
        // and not the disk.
        let entries: Vec<LayerEntry> = (0..(mib << 20).div_ceil(file))
            .map(|i| LayerEntry::file(format!("data/{i:05}"), make(file, i as u64)))
            .collect();
        for compression in [
            Compression::Gzip(6),
            Compression::Zstd(3),
            Compression::None,
        ] {
            let options = LayerOptions {
                compression,
                threads,
                ..LayerOptions::default()
            };
            let input = entries.clone();
            let start = Instant::now();
            let (desc, _) =
                write_layer(input, &options, std::io::sink()).expect("writing the layer");
            let secs = start.elapsed().as_secs_f64();
            println!(
                "{label:15} {compression:16} {mib} MiB in {secs:.2}s = {:.0} MiB/s, blob {} bytes, {threads} threads",
                mib as f64 / secs,
                desc.size
            );
        }
    }
}

fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn text(len: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut n = seed;
    while out.len() < len {
        out.extend_from_slice(
            format!(
                "{n:08} INFO request served path=/api/v1/items/{} status=200\n",
                n % 977
            )
            .as_bytes(),
        );
        n += 1;
    }
    out.truncate(len);
    out
}

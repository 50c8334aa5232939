//! Compression: thread-count independent gzip, zstd, digests.

use kiln_oci::compression::ParallelGzipWriter;
use kiln_oci::{
    compress_tar, write_layer, write_tar, Compression, Digest, LayerEntry, LayerOptions,
};
use sha2::{Digest as _, Sha256};
use std::io::{Read, Write};

/// ~10 MiB mixing incompressible, repetitive and text-like stretches, so
/// blocks of every kind and dictionary use are exercised.
fn mixed_data() -> Vec<u8> {
    let mut out = Vec::with_capacity(10 << 20);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut chunk = 0;
    while out.len() < 10 << 20 {
        let len = 37_000 + (chunk * 7919) % 150_000;
        match chunk % 3 {
            0 => out.extend((0..len).map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })),
            1 => out.extend(std::iter::repeat_n(b'a' + (chunk % 26) as u8, len)),
            _ => out.extend(
                format!("line {chunk} of some log output\n")
                    .bytes()
                    .cycle()
                    .take(len),
            ),
        }
        chunk += 1;
    }
    out
}

fn gzip(data: &[u8], threads: usize) -> Vec<u8> {
    let mut w = ParallelGzipWriter::new(Vec::new(), 6, threads).unwrap();
    // Odd write sizes, so block boundaries never line up with writes.
    for piece in data.chunks(100_003) {
        w.write_all(piece).unwrap();
    }
    w.finish().unwrap()
}

#[test]
fn gzip_is_identical_for_any_thread_count_and_decompresses() {
    let data = mixed_data();
    let one = gzip(&data, 1);
    for threads in [2, 4, 8] {
        assert!(
            gzip(&data, threads) == one,
            "{threads} threads differ from 1"
        );
    }
    let mut back = Vec::new();
    flate2::read::GzDecoder::new(&one[..])
        .read_to_end(&mut back)
        .unwrap();
    assert!(back == data);
    assert!(
        one.len() < data.len() * 6 / 10,
        "compressed to {} of {}",
        one.len(),
        data.len()
    );
}

#[test]
fn gzip_of_nothing_and_of_exact_blocks_is_valid() {
    for len in [0usize, 1, 128 * 1024, 256 * 1024] {
        let data = vec![7u8; len];
        let gz = gzip(&data, 3);
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data, "length {len}");
    }
}

fn sha(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

#[test]
fn layer_digests_match_independent_hashes() {
    let entries = vec![
        LayerEntry::file("etc/motd", "hello\n".repeat(1000)),
        LayerEntry::dir("var/empty"),
    ];
    for compression in [
        Compression::Gzip(6),
        Compression::Zstd(3),
        Compression::None,
    ] {
        let options = LayerOptions {
            compression,
            threads: 2,
            ..LayerOptions::default()
        };
        let (desc, blob) = write_layer(entries.clone(), &options, Vec::new()).unwrap();
        let tar = match compression {
            Compression::Gzip(_) => {
                let mut t = Vec::new();
                flate2::read::GzDecoder::new(&blob[..])
                    .read_to_end(&mut t)
                    .unwrap();
                t
            }
            Compression::Zstd(_) => zstd::stream::decode_all(&blob[..]).unwrap(),
            Compression::None => blob.clone(),
        };
        let (plain, _) = write_layer(
            entries.clone(),
            &LayerOptions {
                compression: Compression::None,
                ..options
            },
            Vec::new(),
        )
        .unwrap();
        assert_eq!(desc.diff_id.to_string(), sha(&tar), "{compression}");
        assert_eq!(desc.diff_id, plain.diff_id);
        assert_eq!(desc.digest.to_string(), sha(&blob));
        assert_eq!(desc.size, blob.len() as u64);
        assert_eq!(desc.media_type, compression.media_type());
        assert_eq!(
            desc.digest == desc.diff_id,
            compression == Compression::None
        );
        let _: Digest = desc.digest;
    }
}

#[test]
fn zstd_round_trips_and_ignores_thread_count() {
    let data = mixed_data();
    let enc = |threads| {
        let mut e = Compression::Zstd(3).encoder(Vec::new(), threads).unwrap();
        e.write_all(&data).unwrap();
        e.finish().unwrap()
    };
    let one = enc(1);
    assert!(enc(2) == one);
    assert!(zstd::stream::decode_all(&one[..]).unwrap() == data);
}

/// Incompressible bytes (xorshift).
fn noise(len: usize, mut x: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
#[cfg_attr(
    windows,
    ignore = "runs the gzip program, which a Windows test host (or Wine) seldom has; the Linux run covers it"
)]
fn incompressible_blocks_are_stored_and_any_gzip_reads_them() {
    // Random blocks are stored (the output is the input plus framing), the
    // text between them still deflated, and the last block of the stream,
    // stored or not, ends it.
    for (len, text) in [
        (1 << 20, false),
        ((1 << 20) + 5_000, false),
        (3 << 20, true),
    ] {
        let mut data = noise(len, 0x1234_5678_9abc_def1);
        if text {
            let log: Vec<u8> = b"a log line that repeats\n"
                .iter()
                .copied()
                .cycle()
                .take(1 << 20)
                .collect();
            data.splice(1 << 20..1 << 20, log);
        }
        let gz = gzip(&data, 2);
        assert!(gz == gzip(&data, 1), "thread count changed the bytes");
        let random = len;
        assert!(
            gz.len() < random + random / 100 + if text { 100_000 } else { 0 },
            "{} bytes for {} ({} random)",
            gz.len(),
            data.len(),
            random
        );
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut back)
            .unwrap();
        assert!(back == data, "flate2 read back other bytes");
        let mut child = std::process::Command::new("gzip")
            .args(["-dc"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || stdin.write_all(&gz).unwrap());
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        assert!(out.status.success());
        assert!(out.stdout == data, "gzip -d read back other bytes");
    }
}

/// A reader that hands out at most `n` bytes a call.
struct Trickle<'a>(&'a [u8], usize);

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.1).min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

/// A build stores a step's layer as a tar and compresses it later
/// (kiln-native's `compress`): the image id is the manifest's digest, so
/// the later blob must be byte for byte the one written in one pass.
#[test]
fn compressing_a_stored_tar_later_gives_the_blob_written_in_one_pass() {
    let data = mixed_data();
    let entries = || {
        vec![
            LayerEntry::dir("app"),
            LayerEntry::file("app/data", data.clone()),
        ]
    };
    for compression in [
        Compression::Gzip(6),
        Compression::Gzip(1),
        Compression::Zstd(3),
    ] {
        let options = LayerOptions {
            compression,
            ..LayerOptions::default()
        };
        let (eager, eager_blob) = write_layer(entries(), &options, Vec::new()).unwrap();
        let tar = write_tar(entries(), &options, Vec::new()).unwrap();
        for (threads, chunk) in [(1, 7), (4, 100_003)] {
            let (later, blob) =
                compress_tar(Trickle(&tar, chunk), compression, threads, Vec::new()).unwrap();
            assert_eq!(later, eager, "{compression:?}, {threads} threads");
            assert!(blob == eager_blob, "{compression:?}, {threads} threads");
        }
        assert_eq!(eager.diff_id, Digest::of(&tar));
    }
}

//! A short, deterministic fuzz run of the layer reader and extractor, kept
//! in the test suite: hostile tars (names, links, whiteouts, PAX records,
//! sizes, type flags) made by mutating valid layers. Nothing may panic, and
//! nothing outside the extraction root may change. The long coverage-guided
//! run is `cargo fuzz run layer_extract` (see docs/fuzzing.md).

use kiln_oci::layer::read::LayerReader;
use kiln_oci::{
    extract_layer, write_layer, Compression, Digest, EntryKind, ExtractOptions, LayerEntry,
    LayerOptions, Whiteouts,
};
use std::fs;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*: deterministic, so a failure reproduces exactly.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A header block, any fields, checksum set.
fn header(name: &[u8], typeflag: u8, size: &[u8], link: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 512];
    let n = name.len().min(100);
    b[..n].copy_from_slice(&name[..n]);
    b[100..107].copy_from_slice(b"0000644");
    let s = size.len().min(12);
    b[124..124 + s].copy_from_slice(&size[..s]);
    b[156] = typeflag;
    let l = link.len().min(100);
    b[157..157 + l].copy_from_slice(&link[..l]);
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    b[148..156].copy_from_slice(b"        ");
    let sum: u32 = b.iter().map(|x| u32::from(*x)).sum();
    b[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    b
}

const NAMES: &[&[u8]] = &[
    b".wh..",
    b".wh...",
    b".wh.",
    b".wh..wh..opq",
    b"a/.wh...",
    b".wh.../x",
    b"../x",
    b"/etc/passwd",
    b"a/../../b",
    b"a/b/c",
    b"l/x",
    b"./",
    b"",
    b"new\nline",
];
const LINKS: &[&[u8]] = &[b"/", b"../..", b"a", b"a/b/c", b"/etc/passwd", b"l", b""];
const TYPES: &[u8] = b"0125673LKxgSZ\0";
const SIZES: &[&[u8]] = &[
    b"00000000000",
    b"00000000001",
    b"77777777777",
    b"\x80\0\0\0\0\0\0\x40\0\0\0\0",
    b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
    b"zzz",
];
const PAX: &[&[u8]] = &[
    b"13 path=a/b\n",
    b"30 SCHILY.xattr.user.x=a\nb\0c\n",
    b"16 linkpath=/x\n",
    b"99 path=a\n",
    b"12 size=-1\n",
    b"18 GNU.sparse.map=\n",
    b"11 mtime=x\n",
    b"9 uid=\n",
];

fn seeds() -> Vec<Vec<u8>> {
    let plain = LayerOptions {
        compression: Compression::None,
        threads: 1,
        ..LayerOptions::default()
    };
    let layer = |entries: Vec<LayerEntry>| write_layer(entries, &plain, Vec::new()).unwrap().1;
    vec![
        layer(vec![
            LayerEntry::dir("a"),
            LayerEntry::file("a/f", "hello"),
            LayerEntry::symlink("l", "/"),
            LayerEntry::new("a/h", EntryKind::Hardlink("a/f".into())),
            LayerEntry::whiteout("gone"),
            LayerEntry::new("a/b", EntryKind::Opaque),
            LayerEntry::file("x".repeat(200), "long").with_xattr("user.k", vec![b'\n'; 3]),
        ]),
        layer(vec![LayerEntry::new("fifo", EntryKind::Fifo)]),
    ]
}

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(6) {
            0 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] = rng.next() as u8;
            }
            1 => {
                let h = header(
                    NAMES[rng.below(NAMES.len())],
                    TYPES[rng.below(TYPES.len())],
                    SIZES[rng.below(SIZES.len())],
                    LINKS[rng.below(LINKS.len())],
                );
                let at = rng.below(data.len() / 512 + 1) * 512;
                data.splice(at.min(data.len())..at.min(data.len()), h);
            }
            2 => {
                let body = PAX[rng.below(PAX.len())];
                let mut h = header(
                    b"PaxHeader",
                    b'x',
                    format!("{:011o}", body.len()).as_bytes(),
                    b"",
                );
                h.extend_from_slice(body);
                h.resize(h.len().div_ceil(512) * 512, 0);
                let at = rng.below(data.len() / 512 + 1) * 512;
                data.splice(at.min(data.len())..at.min(data.len()), h);
            }
            3 if !data.is_empty() => {
                let n = rng.below(data.len());
                data.truncate(n);
            }
            4 => data.extend(vec![0u8; 512 * rng.below(3)]),
            _ => {
                let gz = rng.below(4) == 0;
                if gz {
                    use std::io::Write;
                    let mut e =
                        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                    e.write_all(&data).unwrap();
                    data = e.finish().unwrap();
                }
            }
        }
    }
    data
}

#[test]
fn hostile_layers_never_panic_or_write_outside_the_root() {
    let seeds = seeds();
    let mut rng = Rng(0x006b_696c_6e2d_3136);
    for i in 0..1500 {
        let data = mutate(&mut rng, &seeds[i % seeds.len()]);
        if let Ok(mut reader) = LayerReader::new(&data[..]) {
            while let Ok(Some(_)) = reader.next_entry() {}
        }
        let outer = tempfile::tempdir().unwrap();
        let root = outer.path().join("root");
        fs::create_dir(&root).unwrap();
        fs::write(outer.path().join("sentinel"), b"x").unwrap();
        for whiteouts in [Whiteouts::Apply, Whiteouts::Overlay { userxattr: true }] {
            let options = ExtractOptions {
                restore_owners: false,
                whiteouts,
                replace_in_the_way: false,
            };
            let _ = extract_layer(&data[..], &root, &Digest::of(b""), &options);
            let names: Vec<_> = fs::read_dir(outer.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(
                names.len(),
                2,
                "case {i}: written beside the root: {names:?}"
            );
            assert_eq!(fs::read(outer.path().join("sentinel")).unwrap(), b"x");
        }
    }
}

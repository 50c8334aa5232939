//! The transport folder conversion streams file data in both directions:
//! a large file passes through with a small, fixed peak of heap memory.
//! Its own test binary, so the counting allocator sees only this test.

use kiln_oci::windows::{folder_to_tar, layer_to_folder, FolderOptions};
use std::alloc::{GlobalAlloc, Layout, System};
use std::fs;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(n: usize) {
    let now = CURRENT.fetch_add(n, Ordering::SeqCst) + n;
    PEAK.fetch_max(now, Ordering::SeqCst);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        unsafe { System.dealloc(p, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::SeqCst);
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, layout, new) };
        if !q.is_null() {
            CURRENT.fetch_sub(layout.size(), Ordering::SeqCst);
            grew(new);
        }
        q
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Heap growth above the level at the start, while `f` runs.
fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = CURRENT.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    let out = f();
    (out, PEAK.load(Ordering::SeqCst) - base)
}

/// Counts what is written, keeping none of it.
#[derive(Default)]
struct Sink {
    len: u64,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.len += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

const GIB: u64 = 1 << 30;
const LIMIT: usize = 4 << 20;

#[test]
fn large_files_stream_through_in_bounded_memory() {
    // Folder → layer: a 1 GiB data stream, sparse on disk so the test
    // costs no disk space.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir_all(root.join("Files")).unwrap();
    fs::create_dir_all(root.join("Hives")).unwrap();
    fs::write(root.join("tombstones.txt"), "\u{feff}Version 1.0\n").unwrap();
    // Attributes and the data stream's header; the data is the hole.
    let mut head = 0x20u32.to_le_bytes().to_vec();
    head.extend_from_slice(&1u32.to_le_bytes());
    head.extend_from_slice(&0u32.to_le_bytes());
    head.extend_from_slice(&GIB.to_le_bytes());
    head.extend_from_slice(&0u32.to_le_bytes());
    let file = fs::File::create(root.join("Files/big")).unwrap();
    (&file).write_all(&head).unwrap();
    file.set_len(head.len() as u64 + GIB).unwrap();

    let (sink, peak) =
        peak_during(|| folder_to_tar(root, &FolderOptions::default(), Sink::default()).unwrap());
    assert!(sink.len > GIB, "{}", sink.len);
    assert!(peak < LIMIT, "folder to layer peaked at {peak} bytes");

    // Layer → folder: a 64 MiB entry generated on the fly (it is written
    // to disk, so smaller), sixteen times the limit.
    let size = 64 << 20;
    let mut tar = Vec::new();
    let mut builder = tar::Builder::new(&mut tar);
    for name in ["Files", "Hives"] {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_size(0);
        h.set_cksum();
        builder.append_data(&mut h, name, io::empty()).unwrap();
    }
    builder.finish().unwrap();
    drop(builder);
    tar.truncate(tar.len() - 1024);
    let mut h = tar::Header::new_ustar();
    h.set_path("Files/big").unwrap();
    h.set_size(size);
    h.set_cksum();
    let layer = tar
        .as_slice()
        .chain(&h.as_bytes()[..])
        .chain(io::repeat(7).take(size))
        .chain(&[0u8; 1024][..]);
    let out = tempfile::tempdir().unwrap();
    let (result, peak) = peak_during(|| layer_to_folder(layer, out.path()));
    result.unwrap();
    assert!(peak < LIMIT, "layer to folder peaked at {peak} bytes");
    let written = fs::metadata(out.path().join("Files/big")).unwrap().len();
    assert_eq!(written, 4 + 20 + size);
}

//! Arbitrary bytes as a layer blob, through the layer reader and the
//! extractor in both whiteout modes. A panic is a bug, and so is anything
//! written outside the extraction root; an error is an expected outcome.
#![no_main]

use kiln_oci::layer::read::LayerReader;
use kiln_oci::{extract_layer, Digest, ExtractOptions, Whiteouts};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut reader = match LayerReader::new(data) {
        Ok(r) => r,
        Err(_) => return,
    };
    while let Ok(Some(_)) = reader.next_entry() {}

    let outer = tempfile::tempdir().unwrap();
    let root = outer.path().join("root");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(outer.path().join("sentinel"), b"x").unwrap();
    for whiteouts in [Whiteouts::Apply, Whiteouts::Overlay { userxattr: true }] {
        let options = ExtractOptions {
            restore_owners: false,
            whiteouts,
        };
        let _ = extract_layer(data, &root, &Digest::of(b""), &options);
        let names: Vec<_> = std::fs::read_dir(outer.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "something was written beside the root: {names:?}");
        assert_eq!(std::fs::read(outer.path().join("sentinel")).unwrap(), b"x");
    }
});

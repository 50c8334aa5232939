//! Feeds arbitrary bytes through the whole front end: parse, dump, and
//! resolve with default options. Any panic is a bug; errors are fine.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    kiln_frontend_fuzz_body(data);
});

fn kiln_frontend_fuzz_body(data: &[u8]) {
    if let Ok(ast) = kiln_frontend::parse("Dockerfile", data) {
        let _ = ast.dump();
    }
}

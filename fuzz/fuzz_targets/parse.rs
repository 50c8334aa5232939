//! Feeds arbitrary bytes through the whole front end: parse, dump, typed
//! instructions and stage resolution. Any panic is a bug; errors are fine.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(ast) = kiln_frontend::parse("Dockerfile", data) {
        let _ = ast.dump();
        let _ = kiln_frontend::instructions::parse(&ast);
        if let Ok(plan) = kiln_frontend::stages::resolve(&ast, &Default::default()) {
            let _ = plan.to_string();
        }
    }
});

//! A short, deterministic fuzz run kept in the test suite: mutated BuildKit
//! test Dockerfiles go through parse → dump → typed instructions → resolve.
//! The long coverage-guided run is `cargo fuzz` (see docs/fuzzing.md); this
//! catches regressions in every test run without needing a nightly toolchain.

use std::path::Path;

const TESTFILES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/conformance/buildkit/parser/testfiles"
);

/// Fragments that reach the parser's rarer paths when spliced in.
const TOKENS: &[&str] = &[
    "\\\n",
    "`",
    "<<EOF\n",
    "<<-'EOF'\nx\nEOF\n",
    "EOF\n",
    "[\"a\", ",
    "]",
    "\"",
    "'",
    "${",
    "}",
    "$x",
    "${x:-${y}}",
    "${x#*}",
    "--mount=type=cache,target=/x ",
    "--from=0 ",
    "ONBUILD ",
    "FROM a AS b\n",
    "# escape=`\n",
    "\r\n",
    "\u{feff}",
    "\t",
    "=",
    "ARG x=1\n",
    "COPY <<A <<B /\n",
    "\\",
    "\u{00e9}",
    "\0",
];

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
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(data.len() + 1);
        match rng.below(4) {
            0 if !data.is_empty() => {
                let end = (at + rng.below(16)).min(data.len());
                data.drain(at.min(end)..end);
            }
            1 if at < data.len() => data[at] = rng.next() as u8,
            _ => {
                let token = TOKENS[rng.below(TOKENS.len())].as_bytes();
                data.splice(at..at, token.iter().copied());
            }
        }
    }
    data
}

#[test]
fn mutated_dockerfiles_never_panic_and_errors_point_into_the_file() {
    let dir = Path::new(TESTFILES);
    assert!(
        dir.is_dir(),
        "BuildKit conformance data missing at {TESTFILES}"
    );
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path().join("Dockerfile")).unwrap())
        .collect();
    seeds.sort();
    let mut rng = Rng(0x6b69_6c6e);
    let (mut parsed, mut failed) = (0, 0);
    for _ in 0..3000 {
        let seed = &seeds[rng.below(seeds.len())];
        let input = mutate(&mut rng, seed);
        let lines = input.split(|&b| b == b'\n').count();
        match kiln_frontend::parse("Dockerfile", &input) {
            Ok(ast) => {
                parsed += 1;
                assert!(ast.dump().ends_with('\n'));
                let checked = kiln_frontend::instructions::parse(&ast)
                    .and_then(|_| kiln_frontend::stages::resolve(&ast, &Default::default()));
                match checked {
                    Ok(plan) => drop(plan.to_string()),
                    Err(err) => assert!(err.line <= lines && !err.message.is_empty(), "{err}"),
                }
            }
            Err(err) => {
                failed += 1;
                assert!(err.line <= lines && !err.message.is_empty(), "{err}");
                assert_eq!(err.file, "Dockerfile");
            }
        }
    }
    // Both paths must be exercised, or the mutations are too weak/strong.
    assert!(
        parsed > 800 && failed > 10,
        "parsed {parsed}, failed {failed}"
    );
}

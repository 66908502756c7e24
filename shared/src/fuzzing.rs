//! The runner of the fuzz targets: the `mod fuzz` beside each module that reads outside input.
//!
//! A target is a proptest property, run under a budget taken from the environment:
//! - by default a quick run of [`QUICK_CASES`] cases (or `FUZZ_CASES`), which `cargo test` (and so
//!   `scripts/test`) does, so that no target can rot;
//! - with `FUZZ_SECONDS` set (by `scripts/fuzz`), batches of cases with fresh random seeds until
//!   that many seconds have passed.
//!
//! Each target writes one line to stderr, `fuzz <target>: <cases> cases, <seconds> s, <failures>
//! failures`, which `scripts/fuzz` collects. A failure panics with the smallest failing input
//! proptest could shrink to; it then becomes an explicit `#[test]` beside the target.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseResult, TestError, TestRunner};

/// Enough to exercise every branch of every generator, few enough that all targets together take
/// seconds in a debug build.
const QUICK_CASES: u32 = 256;
/// Cases per seed in a timed run; small enough that a run overshoots its budget by little.
const BATCH_CASES: u32 = 100;

pub fn fuzz<S: Strategy>(target: &str, strategy: S, property: impl Fn(S::Value) -> TestCaseResult) {
    let budget = std::env::var("FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(Duration::from_secs_f64);
    let quick = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(QUICK_CASES);
    let started = Instant::now();
    let mut cases: u64 = 0;
    loop {
        let batch = if budget.is_some() { BATCH_CASES } else { quick };
        let config = Config {
            cases: batch,
            // Failures are kept as explicit tests, not as seed files.
            failure_persistence: None,
            ..Config::default()
        };
        // A new runner draws a new random seed.
        let outcome = TestRunner::new(config).run(&strategy, &property);
        let failure = match outcome {
            Ok(()) => None,
            Err(TestError::Fail(reason, input)) => Some(format!("{reason}; input: {input:?}")),
            Err(TestError::Abort(reason)) => Some(format!("aborted: {reason}")),
        };
        cases += u64::from(batch);
        let done = budget.is_none_or(|budget| started.elapsed() >= budget);
        if failure.is_some() || done {
            eprintln!(
                "fuzz {target}: {cases} cases, {:.1} s, {} failures",
                started.elapsed().as_secs_f64(),
                u8::from(failure.is_some())
            );
        }
        if let Some(failure) = failure {
            panic!("fuzz {target} failed: {failure}");
        }
        if done {
            return;
        }
    }
}

/// Characters that trip up text handling: controls, Unicode whitespace, the byte-order mark,
/// surrogate-pair emoji, JSON's and the ids' punctuation — and, now and then, any character.
pub fn nasty_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => proptest::char::range('a', 'z'),
        2 => proptest::char::range(' ', '~'),
        2 => prop::sample::select(vec![
            '\0', '\t', '\n', '\r', '\u{7}', '\u{1b}', '\u{7f}', '\u{85}', '\u{a0}', '\u{200b}',
            '\u{2028}', '\u{3000}', '\u{feff}', '\u{fffd}', 'é', 'ß', '😀', '𝕏', '"', '\\', '[',
            ']', '{', '}', '/', '.', '-', '_', '@', ' ',
        ]),
        1 => any::<char>(),
    ]
}

/// Text of up to `max` characters from [`nasty_char`].
pub fn nasty_string(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(nasty_char(), 0..=max).prop_map(String::from_iter)
}

/// Text that is mostly short and sometimes huge: one character repeated up to `max` times after a
/// short prefix, to cross every length limit.
pub fn text(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        6 => nasty_string(24),
        2 => prop::sample::select(vec![
            "", " ", "null", "NULL", "undefined", "None", "nil", "NaN", "true", "false", "[]",
            "{}", "[a b]", "{\"id\":\"x\"}", "..", ".", "user-42", "org-7",
        ])
        .prop_map(str::to_owned),
        1 => (nasty_string(4), nasty_char(), 0..=max)
            .prop_map(|(prefix, c, n)| prefix + &c.to_string().repeat(n)),
    ]
}

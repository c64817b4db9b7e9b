//! The fuzz target's run and checks (fuzz/fuzz_targets/case.rs) on stable,
//! in every `cargo test`: each seed, each seed under every secret header
//! and method, and random inputs. Fuzzing proper, guided by coverage, is
//! `scripts/fuzz` (nightly; `scripts/test --fuzz`).

#[path = "../../fuzz/fuzz_targets/case.rs"]
mod case;

use proptest::prelude::*;
use std::path::PathBuf;
use std::sync::Mutex;

/// One run at a time: the checks count the stand-in's calls around each.
fn check(data: &[u8]) -> Option<u16> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    case::check(case::world(), data)
}

/// The seeds in the repository (fuzz/seeds/webhook), by name.
fn seeds() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/webhook");
    let mut seeds: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    seeds.sort();
    assert!(seeds.len() >= 5, "the seeds are in {}", dir.display());
    seeds
}

#[test]
fn every_seed_is_answered_and_each_of_its_variants_gets_a_documented_status() {
    for (name, seed) in seeds() {
        // A seed with the right secret, by POST, is a real update's
        // delivery, answered.
        let status = check(&seed);
        if seed[0] & 0b11110 == 0 {
            assert_eq!(status, Some(200), "seed {name}");
        }
        // The same body under each secret header and method, base64 or
        // not: checked by case::check (a documented status; no Bot API
        // call without the right secret).
        for flags in 0..32u8 {
            let mut variant = seed.clone();
            variant[0] = flags;
            assert!(check(&variant).is_some(), "seed {name}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn random_requests_get_a_documented_status(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        check(&data);
    }

    #[test]
    fn seeds_with_bytes_changed_get_a_documented_status(
        which in any::<prop::sample::Index>(),
        changes in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let seeds = seeds();
        let mut data = seeds[which.index(seeds.len())].1.clone();
        for (at, byte) in changes {
            let at = at.index(data.len());
            data[at] = byte;
        }
        check(&data);
    }
}

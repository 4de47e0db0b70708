//! Fuzz the seccomp profile parser and the analysis behind
//! `warden lint-profile`, which reads files from users' repositories.
//!
//! Properties, beyond "never panics":
//! - a parse error always names a position (line >= 1) unless it came from
//!   an OCI config's embedded object, and has a message;
//! - a parsed profile survives serialize -> parse unchanged, unknown fields
//!   included (nothing a user wrote is dropped or altered);
//! - the analysis runs on anything that parses, for every target set, and
//!   its findings carry a known check id.

#![no_main]

use libfuzzer_sys::fuzz_target;
use runtime_core::seccomp::{self, Context, Profile, ProfileSource, Target};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match seccomp::parse_input(text) {
        Err(e) => {
            assert!(!e.message.is_empty());
            assert!(e.line >= 1 || e.path.starts_with("linux.seccomp") || e.path.starts_with("process"), "{e:?}");
        }
        Ok(input) => {
            let Some(profile) = input.profile else { return };
            let json = serde_json::to_string(&profile).expect("serialize a parsed profile");
            let again = Profile::from_json(&json).expect("reparse a serialized profile");
            assert_eq!(again, profile, "round trip changed the profile: {json}");
            for targets in [
                Target::all_known(),
                vec![Target::parse("runc@1.1.5").unwrap(), Target::parse("crun@1.5").unwrap()],
            ] {
                for nnp in [None, Some(true), Some(false)] {
                    let ctx = Context {
                        source: input.source.clone(),
                        targets: targets.clone(),
                        no_new_privileges: nnp,
                    };
                    for f in seccomp::analyze(&profile, &ctx) {
                        assert!(f.check.is_profile_check(), "{f:?}");
                        assert!(!f.message.is_empty());
                    }
                }
            }
            let _ = seccomp::analyze(
                &profile,
                &Context {
                    source: ProfileSource::Standalone,
                    targets: vec![],
                    no_new_privileges: None,
                },
            );
        }
    }
});

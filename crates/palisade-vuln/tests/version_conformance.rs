//! Per-ecosystem version-comparison conformance: tables of `(a, b, expected)` derived from each
//! ecosystem's own rules (SemVer 2.0, Go modules, Maven ComparableVersion, PEP 440, dpkg,
//! apk-tools, rpmvercmp), each checked both ways, plus transitivity over each table's versions
//! and property tests that comparison never panics and is reflexive and antisymmetric.

#![allow(clippy::panic)]

use std::cmp::Ordering::{self, Equal as E, Greater as G, Less as L};

use palisade_vuln::version::{Ecosystem, MAX_VERSION_LEN, Version, VersionError, compare, parse};
use proptest::prelude::*;

type Pair = (&'static str, &'static str, Ordering);
type Table = &'static [Pair];

/// SemVer 2.0 precedence, shared by npm and Cargo.
const SEMVER: Table = &[
    ("1.0.0", "2.0.0", L),
    ("2.0.0", "2.1.0", L),
    ("2.1.0", "2.1.1", L),
    ("1.9.0", "1.10.0", L),
    ("1.10.0", "1.9.9", G),
    ("0.0.1", "0.0.2", L),
    ("1.0.0", "1.0.0", E),
    ("10.0.0", "9.0.0", G),
    // The precedence chain from the specification.
    ("1.0.0-alpha", "1.0.0-alpha.1", L),
    ("1.0.0-alpha.1", "1.0.0-alpha.beta", L),
    ("1.0.0-alpha.beta", "1.0.0-beta", L),
    ("1.0.0-beta", "1.0.0-beta.2", L),
    ("1.0.0-beta.2", "1.0.0-beta.11", L),
    ("1.0.0-beta.11", "1.0.0-rc.1", L),
    ("1.0.0-rc.1", "1.0.0", L),
    ("1.0.0-alpha", "1.0.0", L),
    // Numeric identifiers below alphanumeric ones; alphanumeric ones in ASCII order.
    ("1.0.0-1", "1.0.0-alpha", L),
    ("1.0.0-2", "1.0.0-10", L),
    ("1.0.0-a10", "1.0.0-a9", L),
    ("1.0.0-Alpha", "1.0.0-alpha", L),
    ("1.0.0-alpha.1", "1.0.0-alpha.1.1", L),
    ("1.0.0-rc.1", "1.0.0-rc.1.0", L),
    ("1.0.0-rc.1", "0.9.9", G),
    ("1.0.0-x-y-z.1", "1.0.0-x-y-z.2", L),
    ("1.0.0-0", "1.0.0", L),
    ("0.9.0", "1.0.0-0", L),
    ("0.0.0", "0.0.0-0", G),
    ("1.0.0-alpha-a.b-c", "1.0.0-alpha-a.b-d", L),
    ("1.2.3", "1.2.3-rc.10", G),
    ("1.2.3-rc.10", "1.2.3-rc.9", G),
    ("1.2.3-999999999999999999999", "1.2.3-a", L),
    ("18446744073709551616.0.0", "18446744073709551615.0.0", G),
    // Build metadata does not take part in precedence.
    ("1.0.0+a", "1.0.0+b", E),
    ("1.0.0+20130313144700", "1.0.0", E),
    ("1.0.0-beta+exp.sha.5114f85", "1.0.0-beta", E),
    ("1.0.0+21AF26D3----117B344092BD", "1.0.0", E),
    ("1.0.0-alpha+001", "1.0.0-alpha.1", L),
    ("1.0.0+build.1", "1.0.1", L),
    ("2.0.0+x", "1.9.9+y", G),
    ("1.0.0-rc.1+build.1", "1.0.0-rc.1+build.2", E),
];

/// npm tolerates a leading `v` or `=` and surrounding whitespace.
const NPM_ONLY: Table = &[
    ("v1.2.3", "1.2.3", E),
    ("=1.2.3", "1.2.3", E),
    ("v1.2.3", "1.2.4", L),
    (" 1.2.3 ", "1.2.3", E),
    ("=v1.2.3", "v1.2.3", E),
    ("V2.0.0", "1.0.0", G),
    ("v1.0.0-beta", "1.0.0", L),
    ("v1.0.0+build", "=1.0.0", E),
];

const GO: Table = &[
    ("v1.2.3", "1.2.3", E),
    ("v1.2.3", "v1.2.3", E),
    ("v1.2.3", "v1.2.4", L),
    ("v1.10.0", "v1.9.0", G),
    ("v0.1.0", "v0.0.9", G),
    ("v2.0.0", "v10.0.0", L),
    ("v0.0.0", "v0.0.1", L),
    // `+incompatible` is build metadata.
    ("v2.0.0+incompatible", "v2.0.0", E),
    ("v2.0.0+incompatible", "v2.0.1+incompatible", L),
    ("v3.0.0+incompatible", "v2.9.9", G),
    ("v5.0.0+incompatible", "v4.0.0+incompatible", G),
    ("v2.3.4+incompatible", "2.3.4", E),
    ("v1.0.0+meta", "v1.0.0", E),
    ("v1.0.0", "1.0.0+build", E),
    // Shorthands.
    ("v1", "v1.0.0", E),
    ("v1.2", "v1.2.0", E),
    ("v1.2", "v1.2.1", L),
    ("v1.0.0", "v1.0", E),
    ("v1", "v2", L),
    ("v1.5", "v1.10", L),
    // Pre-releases.
    ("v1.2.3-pre", "v1.2.3", L),
    ("v1.0.0-alpha", "v1.0.0-alpha.1", L),
    ("v1.0.0-beta.2", "v1.0.0-beta.11", L),
    ("v1.0.0-rc.1", "v1.0.0", L),
    ("v1.18.0", "v1.18.0-rc.0", G),
    ("v1.2.3-1", "v1.2.3-a", L),
    ("v1.2.3-alpha.10", "v1.2.3-alpha.9", G),
    ("v0.3.0", "v0.3.0-rc1", G),
    // Pseudo-versions order as pre-releases, by timestamp.
    ("v0.0.0-20191109021931-daa7c04131f5", "v0.0.0-20200101000000-abcdefabcdef", L),
    ("v0.0.0-20191109021931-daa7c04131f5", "v0.1.0", L),
    ("v0.0.0-20191109021931-daa7c04131f5", "v0.0.0", L),
    ("v0.0.0-20180101000000-aaaaaaaaaaaa", "v0.0.0-20171231235959-ffffffffffff", G),
    ("v0.0.0-20191109021931-daa7c04131f5", "v0.0.0-20191109021931-ffffffffffff", L),
    ("v1.2.4-0.20191109021931-daa7c04131f5", "v1.2.3", G),
    ("v1.2.4-0.20191109021931-daa7c04131f5", "v1.2.4", L),
    ("v1.2.4-0.20191109021931-daa7c04131f5", "v1.2.4-0.20191109021932-000000000000", L),
    ("v1.2.4-0.20191109021931-daa7c04131f5", "v1.2.4-rc.1", L),
    ("v1.2.3-pre.0.20191109021931-daa7c04131f5", "v1.2.3-pre", G),
    ("v1.2.3-pre.0.20191109021931-daa7c04131f5", "v1.2.3-pre.1", L),
    ("v1.2.3-0.20191109021931-daa7c04131f5", "1.2.3-0.20191109021931-daa7c04131f5", E),
    ("v1.0.1-0.20200101000000-abcdef123456", "v1.0.0", G),
    ("v1.0.1-0.20200101000000-abcdef123456", "v1.0.1-0.20190101000000-abcdef123456", G),
];

const MAVEN: Table = &[
    // Trailing zeros and release qualifiers are trimmed.
    ("2.10.0", "2.10.0.0", E),
    ("2.10", "2.10.0", E),
    ("1", "1.0.0", E),
    ("1.0.0-", "1.0.0", E),
    ("1.0", "1.0-final", E),
    ("1.0", "1.0-ga", E),
    ("1.0", "1.0.RELEASE", E),
    ("1.0.0.Final", "1.0.0", E),
    ("1.0.0.GA", "1.0.0.Final", E),
    // Numbers.
    ("1.0", "1.1", L),
    ("1.9", "1.10", L),
    ("2.0", "10.0", L),
    ("1.2.3", "1.2.3.4", L),
    ("1.2.3.4.5", "1.2.3.4.6", L),
    ("1.0.0.0.0.0.1", "1", G),
    ("1.0", "1.0.1", L),
    // Qualifier order.
    ("1.0-alpha", "1.0-beta", L),
    ("1.0-beta", "1.0-milestone", L),
    ("1.0-milestone", "1.0-rc", L),
    ("1.0-rc", "1.0-cr", E),
    ("1.0-rc", "1.0-snapshot", L),
    ("1.0-SNAPSHOT", "1.0", L),
    ("1.0", "1.0-sp", L),
    ("1.0-SP1", "1.0-sp2", L),
    ("1.0-alpha", "1.0", L),
    ("1.0-RC1", "1.0", L),
    ("1.0-rc1", "1.0-SNAPSHOT", L),
    ("1.2.3-SNAPSHOT", "1.2.3-rc1", G),
    ("3.0.0-M1", "3.0.0-beta-2", G),
    ("3.0.0-M1", "3.0.0-M2", L),
    ("0.9", "1.0-alpha", L),
    // One-letter aliases followed by a digit; case does not matter.
    ("1.0-a1", "1.0-alpha-1", E),
    ("1.0-b2", "1.0-beta-2", E),
    ("1.0-m3", "1.0-milestone-3", E),
    ("1.0-rc1", "1.0-cr1", E),
    ("1.0-RC1", "1.0-rc1", E),
    ("1.0.0-RC1", "1.0-rc-1", E),
    ("1.0-alpha1", "1.0-alpha2", L),
    ("1.0-alpha10", "1.0-alpha2", G),
    // Unknown qualifiers come after the known ones, lexically.
    ("1.0-xyz", "1.0-sp", G),
    ("1.0-abc", "1.0-xyz", L),
    ("1.0-xyz", "1.0", G),
    // Numbers versus strings and lists.
    ("1.0-sp", "1.0.1", L),
    ("1.0.1", "1.0-1", G),
    ("1-1", "1.1", L),
    ("1.0-1", "1-1", E),
    ("1.0-1", "1.0", G),
    ("1.0-alpha-1", "1.0-1", L),
    ("1.0-beta1-SNAPSHOT", "1.0-beta1", L),
    ("1.0-alpha-SNAPSHOT", "1.0-alpha", L),
    ("1.0.0-alpha.1", "1.0.0-alpha.2", L),
    ("1.0.0-alpha.1", "1.0.0-alpha-1", G),
    // A word after other items opens a list of its own (Maven 3.9).
    ("1.0.RC1", "1.0-RC1", E),
    ("1.0.beta", "1.0-beta", E),
    ("1.0.alpha1", "1.0-alpha-1", E),
    ("1.0.SP1", "1.0", G),
];

const PYPI: Table = &[
    // Release segments, zero padding.
    ("1.0", "1.0.0", E),
    ("1.0.0.0.0", "1", E),
    ("1.0", "1.0.1", L),
    ("2.0", "10.0", L),
    ("1.10", "1.9", G),
    // Epochs.
    ("1!1.0", "2.0", G),
    ("1!1.0", "1!1.1", L),
    ("0!1.0", "1.0", E),
    ("2!0.1", "1!9.9", G),
    // Pre-releases and their spellings.
    ("1.0a1", "1.0", L),
    ("1.0a1", "1.0b1", L),
    ("1.0b1", "1.0rc1", L),
    ("1.0rc1", "1.0c1", E),
    ("1.0alpha1", "1.0a1", E),
    ("1.0beta2", "1.0b2", E),
    ("1.0pre3", "1.0rc3", E),
    ("1.0preview3", "1.0rc3", E),
    ("1.0-a1", "1.0a1", E),
    ("1.0.a.1", "1.0a1", E),
    ("1.0_b_2", "1.0b2", E),
    ("1.0a", "1.0a0", E),
    ("1.0a2", "1.0a10", L),
    ("1.0RC1", "1.0rc1", E),
    // Post-releases.
    ("1.0.post1", "1.0", G),
    ("1.0-1", "1.0.post1", E),
    ("1.0post", "1.0.post0", E),
    ("1.0.rev1", "1.0.post1", E),
    ("1.0r1", "1.0.post1", E),
    ("1.0.post1", "1.1", L),
    ("1.0rc1", "1.0.post1", L),
    ("1.0a1.post1", "1.0a1", G),
    ("1.0a1.post1", "1.0a2", L),
    // Dev releases.
    ("1.0.dev0", "1.0a0", L),
    ("1.0.dev0", "1.0", L),
    ("1.0.dev1", "1.0.dev2", L),
    ("1.0-dev", "1.0.dev0", E),
    ("1.0.dev0", "1.0a1.dev0", L),
    ("1.0a1.dev0", "1.0a1", L),
    ("1.0a1.dev0", "1.0a0", G),
    ("1.0.post1.dev0", "1.0.post1", L),
    ("1.0.post1.dev0", "1.0", G),
    // Local versions.
    ("1.0+local", "1.0", G),
    ("1.0+local", "1.0.post1", L),
    ("1.0+1", "1.0+abc", G),
    ("1.0+abc.1", "1.0+abc", G),
    ("1.0+abc.2", "1.0+abc.10", L),
    ("1.0+ubuntu-1", "1.0+ubuntu.1", E),
    ("1.0+ABC", "1.0+abc", E),
    ("1.0.post1+local", "1.0.post1", G),
    // Normalisation.
    ("v1.0", "1.0", E),
    ("V1.0", "1.0", E),
    (" 1.0 ", "1.0", E),
];

const DEBIAN: Table = &[
    ("1.0", "1.0", E),
    ("1.0", "1.1", L),
    ("1.2", "1.10", L),
    ("10", "9", G),
    ("1.02", "1.2", E),
    ("1.0", "1.0.0", L),
    ("1.0.0", "1.0", G),
    // Epochs.
    ("1:1.0", "2.0", G),
    ("0:1.0", "1.0", E),
    ("2:0.1", "1:9.9", G),
    ("1:2.3-4", "2.3-4", G),
    ("00001:1.0", "1:1.0", E),
    ("1:1.0-1", "1:1.0-1", E),
    // Revisions.
    ("1.0", "1.0-0", E),
    ("1.0-1", "1.0-2", L),
    ("1.0-1", "1.0-1.1", L),
    ("1.0-a", "1.0-b", L),
    ("1.0-1ubuntu1", "1.0-1", G),
    ("1.0-1ubuntu1", "1.0-2", L),
    ("1.0-1build1", "1.0-1ubuntu1", L),
    ("1.2.3-0ubuntu0.20.04.1", "1.2.3-0ubuntu0.18.04.1", G),
    // Tilde sorts before everything, even the end.
    ("1.0~rc1", "1.0", L),
    ("1.0~rc1", "1.0~rc2", L),
    ("1.0~~", "1.0~", L),
    ("1.0~", "1.0", L),
    ("1.0~~a", "1.0~~", G),
    ("1.0~rc1-1", "1.0-1", L),
    ("1.0-1~", "1.0-1", L),
    ("2.30-1~bpo10+1", "2.30-1", L),
    ("3.0.11-1~deb12u2", "3.0.11-1", L),
    ("3.0.11-1~deb12u2", "3.0.11-1~deb12u1", G),
    // Letters sort before other characters, after the end.
    ("1.0a", "1.0", G),
    ("1.0a", "1.0+", L),
    ("1.0.1", "1.0a", G),
    ("1.0+b1", "1.0.1", L),
    ("1.0-1.1", "1.0-1+b1", G),
    ("1.0A", "1.0a", L),
    ("1.0+dfsg", "1.0", G),
    ("1.0+dfsg-1", "1.0-1", G),
    ("0.9.8zh-1", "0.9.8zg-1", G),
    // Security updates.
    ("7.50.3-1", "7.50.3-1+deb9u1", L),
    ("7.64.0-4+deb10u2", "7.64.0-4+deb10u10", L),
    ("2.36-9+deb12u4", "2.36-9", G),
];

const ALPINE: Table = &[
    ("1.0", "1.0", E),
    ("1.0", "1.1", L),
    ("1.2", "1.10", L),
    ("2.0", "10.0", L),
    ("1.0", "1.0.1", L),
    ("1.0.0", "1.0", G),
    // A dotted part with leading zeros compares as a fraction.
    ("1.01", "1.1", L),
    ("1.001", "1.01", L),
    ("1.10", "1.09", G),
    ("1.0", "1.00", L),
    ("1.05", "1.4", L),
    // Commit hashes: compared as strings, before the revision.
    ("1.0~abc", "1.0", G),
    ("1.0~abc-r1", "1.0~abd-r0", L),
    ("1.0~abc-r0", "1.0-r0", G),
    ("1.0_p1~abc", "1.0_p1", G),
    // Revisions.
    ("1.0-r0", "1.0-r1", L),
    ("3.1.4-r5", "3.1.4-r10", L),
    ("1.36.1-r2", "1.36.1-r15", L),
    ("1.0", "1.0-r0", L),
    ("1.0-r1", "1.0.1", L),
    ("7.83.0-r0", "7.83.0-r1", L),
    ("7.83.0-r0", "7.79.1-r3", G),
    // Pre-release suffixes below the release, post-release ones above.
    ("1.0_alpha", "1.0_beta", L),
    ("1.0_beta", "1.0_pre", L),
    ("1.0_pre", "1.0_rc", L),
    ("1.0_rc", "1.0", L),
    ("1.0_rc1", "1.0", L),
    ("1.0", "1.0_cvs", L),
    ("1.0_cvs", "1.0_svn", L),
    ("1.0_svn", "1.0_git", L),
    ("1.0_git", "1.0_hg", L),
    ("1.0_hg", "1.0_p", L),
    ("1.0_p1", "1.0_p2", L),
    ("1.0_p1", "1.0.1", L),
    ("1.0_p1", "1.0-r1", G),
    ("0.1", "0.1_p1", L),
    ("1.0_rc1", "1.0_rc2", L),
    ("1.0_rc", "1.0_rc1", L),
    ("1.0_alpha1", "1.0_alpha2", L),
    ("1.0_rc1-r0", "1.0_rc1-r1", L),
    ("1.0_rc1-r5", "1.0-r0", L),
    ("1.2.3_rc1-r0", "1.2.3-r0", L),
    ("1.2.3_rc1-r0", "1.2.2-r9", G),
    ("1.0_alpha_p1", "1.0_alpha", G),
    ("1.0_beta_pre", "1.0_beta", L),
    ("1.24.2-r0", "1.24.2_git20230101-r0", L),
    // Letters.
    ("1.0a", "1.0", G),
    ("1.0a", "1.0b", L),
    ("1.0a", "1.0.1", L),
    ("1.0a", "1.0_alpha", G),
];

const RPM: Table = &[
    ("1.0", "1.0", E),
    ("1.0", "1.1", L),
    ("1.10", "1.9", G),
    ("2.0", "10", L),
    ("1.0", "1.0.1", L),
    ("1.01", "1.1", E),
    ("1.0", "1.0.", E),
    ("1_0", "1.0", E),
    ("1+0", "1.0", E),
    // Letters: below numbers, above the end, ASCII order.
    ("1.0a", "1.0", G),
    ("1.0a", "1.0.1", L),
    ("1.0.1", "1.0a", G),
    ("1.0a1", "1.0.1", L),
    ("1.0a", "1.0b", L),
    ("a", "b", L),
    ("alpha", "beta", L),
    ("B", "a", L),
    // Tilde sorts before everything.
    ("1.0~rc1", "1.0", L),
    ("1.0~rc1", "1.0~rc2", L),
    ("1.0~~", "1.0~", L),
    ("1.0~rc1", "1.0~", G),
    ("1.0~beta", "1.0~alpha", G),
    // Caret sorts after the base version, before any further segment.
    ("1.0^", "1.0", G),
    ("1.0", "1.0^", L),
    ("1.0^git1", "1.0", G),
    ("1.0^git1", "1.0.1", L),
    ("1.0^git1", "1.0^git2", L),
    ("1.0^git1~pre", "1.0^git1", L),
    ("1.0~rc1^git1", "1.0~rc1", G),
    ("1.0~rc1^git1", "1.0~rc2", L),
    ("1.0^", "1.0~", G),
    ("1.0^20200101", "1.0^20191231", G),
    // Epochs.
    ("1:1.0", "2.0", G),
    ("0:1.0", "1.0", E),
    ("2:1.0-1", "1:9.9-9", G),
    // Releases.
    ("1.0-1", "1.0-2", L),
    ("1.0-1", "1.0-1", E),
    ("1.0", "1.0-1", L),
    ("1.0-1.el8", "1.0-1.el9", L),
    ("1.0-10.el8", "1.0-9.el8", G),
    ("7.50.3-1.fc25", "7.50.3-2.fc25", L),
    ("7.61.1-22.el8", "7.61.1-22.el8_6.3", L),
    ("5.3.28-40.el8", "5.3.28-40.el8_2", L),
    ("3.6.8-51.el8_8.2", "3.6.8-51.el8_8.10", L),
];

const GENERIC: Table = &[
    ("1.0", "1.0", E),
    ("1.0", "1", E),
    ("1.0.0", "1", E),
    ("1.0", "1.0.0.0", E),
    ("1.0", "1-0", E),
    ("01.2", "1.2", E),
    ("1..2", "1.2", E),
    ("2024.01.15", "2024.1.15", E),
    ("v1.0", "1.0", E),
    ("1.0-RC1", "1.0-rc1", E),
    ("", "0", E),
    ("1.0", "1.1", L),
    ("1.9", "1.10", L),
    ("2", "10", L),
    ("10.0", "9.9", G),
    ("1.2.3", "1.2.10", L),
    ("1.2.3.4", "1.2.3", G),
    ("1.0.0.0.1", "1", G),
    ("3.14159", "3.2", G),
    ("2024.01.15", "2023.12.31", G),
    ("1.0", "1.0.1", L),
    ("1.0.1", "1.0", G),
    ("1.0-1", "1.0", G),
    ("", "1", L),
    ("", "a", G),
    ("abc", "abd", L),
    ("r10", "r9", G),
    ("version 2", "version 10", L),
    ("5.4.0-150-generic", "5.4.0-149-generic", G),
    // Words read as pre-releases: below the end, below numbers.
    ("1.0-beta", "1.0", L),
    ("1.0-alpha", "1.0-beta", L),
    ("1.0.0-SNAPSHOT", "1.0.0", L),
    ("1.0~rc1", "1.0", L),
    ("1.0.1", "1.0-beta", G),
    ("1.0a", "1.0", L),
    ("1a", "1b", L),
    ("1.0a", "1.0b", L),
    ("1.0b", "1.0.1", L),
    ("1.2beta3", "1.2beta4", L),
    ("1.2", "1.2beta", G),
    ("0.9", "1.0-alpha", L),
    ("1.0_rc1", "1.0_rc2", L),
    ("1.0-alpha.1", "1.0-alpha.2", L),
    ("1.0-alpha", "1.0-alpha.1", L),
];

fn tables() -> Vec<(Ecosystem, Vec<Pair>)> {
    let join = |parts: &[Table]| parts.iter().flat_map(|t| t.iter().copied()).collect::<Vec<_>>();
    vec![
        (Ecosystem::Npm, join(&[SEMVER, NPM_ONLY])),
        (Ecosystem::Cargo, join(&[SEMVER])),
        (Ecosystem::Go, join(&[GO])),
        (Ecosystem::Maven, join(&[MAVEN])),
        (Ecosystem::PyPI, join(&[PYPI])),
        (Ecosystem::Debian, join(&[DEBIAN])),
        (Ecosystem::Alpine, join(&[ALPINE])),
        (Ecosystem::Rpm, join(&[RPM])),
        (Ecosystem::Generic, join(&[GENERIC])),
    ]
}

#[test]
fn every_table_has_at_least_forty_pairs() {
    for (eco, table) in tables() {
        assert!(table.len() >= 40, "{eco}: only {} pairs", table.len());
    }
}

#[test]
fn pairs_compare_as_expected_both_ways() {
    let mut failures = Vec::new();
    for (eco, table) in tables() {
        for (a, b, want) in table {
            let forward = compare(eco, a, b);
            let backward = compare(eco, b, a);
            if forward != Ok(want) || backward != Ok(want.reverse()) {
                failures.push(format!("{eco}: {a:?} vs {b:?}: want {want:?}, got {forward:?} / reversed {backward:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn each_table_sorts_consistently() {
    for (eco, table) in tables() {
        let mut versions: Vec<Version> = table
            .iter()
            .flat_map(|(a, b, _)| [*a, *b])
            .map(|s| parse(eco, s).unwrap_or_else(|e| panic!("{e}")))
            .collect();
        versions.sort();
        for (i, x) in versions.iter().enumerate() {
            for y in versions.iter().skip(i + 1) {
                assert_ne!(x.cmp(y), G, "{eco}: sorted {x} before {y}, which is greater (not transitive)");
                assert_eq!(x.cmp(y), y.cmp(x).reverse(), "{eco}: {x} vs {y} not antisymmetric");
            }
        }
    }
}

#[test]
fn invalid_versions_are_errors_naming_them() {
    let cases: &[(Ecosystem, &str, &str)] = &[
        (Ecosystem::Maven, "", "maven version \"\" is empty"),
        (Ecosystem::Npm, "  ", "npm version \"  \" is empty"),
        (Ecosystem::Cargo, "1.2", "cargo version \"1.2\" is invalid: needs major.minor.patch"),
        (Ecosystem::Cargo, "v1.2.3", "cargo version \"v1.2.3\" is invalid: major version \"v1\" is not a number"),
        (Ecosystem::Npm, "01.2.3", "npm version \"01.2.3\" is invalid: major version \"01\" has a leading zero"),
        (Ecosystem::Npm, "1.2.3-", "npm version \"1.2.3-\" is invalid: pre-release has an empty identifier"),
        (Ecosystem::Go, "v1.2-pre", "go version \"v1.2-pre\" is invalid: needs major.minor.patch"),
        (Ecosystem::PyPI, "1.0foo", "pypi version \"1.0foo\" is invalid: unexpected \"foo\""),
        (Ecosystem::PyPI, "abc", "pypi version \"abc\" is invalid: the release does not start with a number"),
        (Ecosystem::Debian, "a:1.0", "debian version \"a:1.0\" is invalid: epoch \"a\" is not a number"),
        (Ecosystem::Debian, "1.0-", "debian version \"1.0-\" is invalid: revision after '-' is empty"),
        (Ecosystem::Alpine, "1.0_foo", "alpine version \"1.0_foo\" is invalid: unknown suffix \"_foo\""),
        (Ecosystem::Alpine, "v1.0", "alpine version \"v1.0\" is invalid: does not start with a number"),
        (Ecosystem::Alpine, "1.0-r1_p1", "alpine version \"1.0-r1_p1\" is invalid: unexpected \"_p1\""),
        (Ecosystem::Alpine, "1.0a.1", "alpine version \"1.0a.1\" is invalid: unexpected \".1\""),
        (
            Ecosystem::Alpine,
            "1.0~",
            "alpine version \"1.0~\" is invalid: '~' is not followed by a hexadecimal commit hash",
        ),
        (Ecosystem::Rpm, "1.0 2", "rpm version \"1.0 2\" is invalid: contains whitespace"),
    ];
    for (eco, input, message) in cases {
        let err = compare(*eco, input, "1.0.0").expect_err(input);
        assert_eq!(err.to_string(), *message);
        let err = compare(*eco, "1.0.0", input).expect_err(input);
        assert!(matches!(err, VersionError::Empty { .. } | VersionError::Invalid { .. }));
    }
    assert_eq!(compare(Ecosystem::Generic, "", "anything at all ☃"), Ok(G));
}

#[test]
fn long_and_deeply_nested_versions_are_bounded() {
    let nested = "1-".repeat(MAX_VERSION_LEN / 2 - 1);
    assert_eq!(compare(Ecosystem::Maven, &nested, &nested), Ok(E));
    assert_eq!(compare(Ecosystem::Maven, &format!("{nested}1"), &nested), Ok(G));
    let too_long = "1.".repeat(MAX_VERSION_LEN);
    for eco in ECOSYSTEMS {
        let result = compare(eco, &too_long, "1");
        if eco == Ecosystem::Generic {
            assert_eq!(result, Ok(G));
        } else {
            let err = result.expect_err("too long");
            assert!(err.to_string().ends_with("is invalid: longer than 1024 bytes"), "{err}");
        }
    }
}

#[test]
fn ecosystem_names() {
    let purl = [
        ("npm", Ecosystem::Npm),
        ("cargo", Ecosystem::Cargo),
        ("golang", Ecosystem::Go),
        ("maven", Ecosystem::Maven),
        ("pypi", Ecosystem::PyPI),
        ("deb", Ecosystem::Debian),
        ("apk", Ecosystem::Alpine),
        ("rpm", Ecosystem::Rpm),
        ("github", Ecosystem::Generic),
        ("", Ecosystem::Generic),
    ];
    for (name, eco) in purl {
        assert_eq!(Ecosystem::from_purl_type(name), eco, "{name}");
    }
    let osv = [
        ("npm", Ecosystem::Npm),
        ("crates.io", Ecosystem::Cargo),
        ("Go", Ecosystem::Go),
        ("Maven", Ecosystem::Maven),
        ("PyPI", Ecosystem::PyPI),
        ("Debian", Ecosystem::Debian),
        ("Debian:11", Ecosystem::Debian),
        ("Ubuntu:22.04:LTS", Ecosystem::Debian),
        ("Alpine", Ecosystem::Alpine),
        ("Alpine:v3.18", Ecosystem::Alpine),
        ("Red Hat", Ecosystem::Rpm),
        ("Red Hat:enterprise_linux:9::appstream", Ecosystem::Rpm),
        ("Rocky Linux:9", Ecosystem::Rpm),
        ("AlmaLinux:8", Ecosystem::Rpm),
        ("openSUSE:Tumbleweed", Ecosystem::Rpm),
        ("SUSE:Linux Enterprise Server 15 SP5", Ecosystem::Rpm),
        ("Hex", Ecosystem::Generic),
        ("", Ecosystem::Generic),
    ];
    for (name, eco) in osv {
        assert_eq!(Ecosystem::from_osv(name), eco, "{name}");
    }
}

const ECOSYSTEMS: [Ecosystem; 9] = [
    Ecosystem::Npm,
    Ecosystem::Cargo,
    Ecosystem::Go,
    Ecosystem::Maven,
    Ecosystem::PyPI,
    Ecosystem::Debian,
    Ecosystem::Alpine,
    Ecosystem::Rpm,
    Ecosystem::Generic,
];

fn check_laws(a: &str, b: &str) {
    for eco in ECOSYSTEMS {
        let (Ok(x), Ok(y)) = (parse(eco, a), parse(eco, b)) else {
            // Still must not panic when one side is invalid.
            let _ = compare(eco, a, b);
            continue;
        };
        assert_eq!(x.cmp(&x), E, "{eco}: {a:?} not equal to itself");
        assert_eq!(x.cmp(&y), y.cmp(&x).reverse(), "{eco}: {a:?} vs {b:?} not antisymmetric");
        assert_eq!(compare(eco, a, b), Ok(x.cmp(&y)));
    }
}

fn check_transitive(a: &str, b: &str, c: &str) {
    for eco in ECOSYSTEMS {
        let (Ok(x), Ok(y), Ok(z)) = (parse(eco, a), parse(eco, b), parse(eco, c)) else { continue };
        let mut sorted = [x, y, z];
        sorted.sort();
        let [x, y, z] = &sorted;
        assert!(x <= y && y <= z && x <= z, "{eco}: {x} <= {y} <= {z} does not hold after sorting");
    }
}

proptest! {
    #[test]
    fn grammar_shaped_strings_are_transitive(
        a in "[0-9](\\.[0-9]){0,2}(-|_|\\.|~|\\^)?(alpha|beta|rc|p|post|dev|sp|a|b)?[0-9]?(-r[0-9]|\\+[a-z0-9])?",
        b in "[0-9](\\.[0-9]){0,2}(-|_|\\.|~|\\^)?(alpha|beta|rc|p|post|dev|sp|a|b)?[0-9]?(-r[0-9]|\\+[a-z0-9])?",
        c in "[0-9](\\.[0-9]){0,2}(-|_|\\.|~|\\^)?(alpha|beta|rc|p|post|dev|sp|a|b)?[0-9]?(-r[0-9]|\\+[a-z0-9])?",
    ) {
        check_transitive(&a, &b, &c);
    }

    #[test]
    fn arbitrary_strings_never_panic(a in "\\PC{0,24}", b in "\\PC{0,24}") {
        check_laws(&a, &b);
    }

    #[test]
    fn version_like_strings_obey_the_laws(
        a in "[vV=]?[0-9]{1,3}(:[0-9]{1,3})?([.~^_+!-]?[0-9a-zA-Z]{0,4}){0,6}",
        b in "[vV=]?[0-9]{1,3}(:[0-9]{1,3})?([.~^_+!-]?[0-9a-zA-Z]{0,4}){0,6}",
    ) {
        check_laws(&a, &b);
    }

    #[test]
    fn grammar_shaped_strings_obey_the_laws(
        a in "[0-9]{1,2}(\\.[0-9]{1,2}){0,3}(-|_|\\.|~)?(alpha|beta|rc|pre|p|post|dev|sp|a|b|m|git)?[0-9]?(-r[0-9]|\\+[a-z0-9]{1,3})?",
        b in "[0-9]{1,2}(\\.[0-9]{1,2}){0,3}(-|_|\\.|~)?(alpha|beta|rc|pre|p|post|dev|sp|a|b|m|git)?[0-9]?(-r[0-9]|\\+[a-z0-9]{1,3})?",
    ) {
        check_laws(&a, &b);
    }
}

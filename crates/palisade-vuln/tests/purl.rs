//! Package URLs: the specification's examples, canonical form, keys and malformed input.

#![allow(clippy::panic)]

use std::collections::BTreeMap;

use palisade_vuln::purl::{Purl, PurlProblem};
use palisade_vuln::version::Ecosystem;

fn parse(s: &str) -> Purl {
    Purl::parse(s).unwrap_or_else(|e| panic!("{e}"))
}

fn qualifiers(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

#[test]
fn spec_examples_parse_and_round_trip() {
    // (input, type, namespace, name, version, qualifiers, subpath, ecosystem)
    type Case<'a> = (
        &'a str,
        &'a str,
        Option<&'a str>,
        &'a str,
        Option<&'a str>,
        &'a [(&'a str, &'a str)],
        Option<&'a str>,
        Ecosystem,
    );
    let cases: &[Case] = &[
        (
            "pkg:npm/%40angular/animation@12.3.1",
            "npm",
            Some("@angular"),
            "animation",
            Some("12.3.1"),
            &[],
            None,
            Ecosystem::Npm,
        ),
        (
            "pkg:maven/org.apache.xmlgraphics/batik-anim@1.9.1?packaging=sources",
            "maven",
            Some("org.apache.xmlgraphics"),
            "batik-anim",
            Some("1.9.1"),
            &[("packaging", "sources")],
            None,
            Ecosystem::Maven,
        ),
        (
            "pkg:deb/debian/curl@7.50.3-1?arch=i386&distro=jessie",
            "deb",
            Some("debian"),
            "curl",
            Some("7.50.3-1"),
            &[("arch", "i386"), ("distro", "jessie")],
            None,
            Ecosystem::Debian,
        ),
        (
            "pkg:golang/google.golang.org/genproto#googleapis/api/annotations",
            "golang",
            Some("google.golang.org"),
            "genproto",
            None,
            &[],
            Some("googleapis/api/annotations"),
            Ecosystem::Go,
        ),
        ("pkg:pypi/django@1.11.1", "pypi", None, "django", Some("1.11.1"), &[], None, Ecosystem::PyPI),
        (
            "pkg:rpm/fedora/curl@7.50.3-1.fc25?arch=i386&distro=fedora-25",
            "rpm",
            Some("fedora"),
            "curl",
            Some("7.50.3-1.fc25"),
            &[("arch", "i386"), ("distro", "fedora-25")],
            None,
            Ecosystem::Rpm,
        ),
        (
            "pkg:apk/alpine/curl@7.83.0-r0?arch=x86",
            "apk",
            Some("alpine"),
            "curl",
            Some("7.83.0-r0"),
            &[("arch", "x86")],
            None,
            Ecosystem::Alpine,
        ),
        ("pkg:cargo/rand@0.7.2", "cargo", None, "rand", Some("0.7.2"), &[], None, Ecosystem::Cargo),
        (
            "pkg:github/package-url/purl-spec@244fd47e07d1004f0aed9c",
            "github",
            Some("package-url"),
            "purl-spec",
            Some("244fd47e07d1004f0aed9c"),
            &[],
            None,
            Ecosystem::Generic,
        ),
    ];
    for (input, ty, namespace, name, version, quals, subpath, eco) in cases {
        let purl = parse(input);
        assert_eq!(purl.ty, *ty, "{input}");
        assert_eq!(purl.namespace.as_deref(), *namespace, "{input}");
        assert_eq!(purl.name, *name, "{input}");
        assert_eq!(purl.version.as_deref(), *version, "{input}");
        assert_eq!(purl.qualifiers, qualifiers(quals), "{input}");
        assert_eq!(purl.subpath.as_deref(), *subpath, "{input}");
        assert_eq!(purl.ecosystem(), *eco, "{input}");
        assert_eq!(purl.to_string(), *input, "canonical form of {input}");
        assert_eq!(parse(&purl.to_string()), purl, "round trip of {input}");
    }
}

#[test]
fn normalisation_to_canonical_form() {
    let cases = [
        // Type lowercased, qualifiers sorted and keys lowercased, empty values dropped.
        (
            "PKG:Maven/org.apache.xmlgraphics/batik-anim@1.9.1?repositorY_url=repo.spring.io/release&classifier=sources&empty=",
            "pkg:maven/org.apache.xmlgraphics/batik-anim@1.9.1?classifier=sources&repository_url=repo.spring.io/release",
        ),
        // Slashes after the scheme and around the path are tolerated.
        ("pkg://npm//foobar@12.3.1/", "pkg:npm/foobar@12.3.1%2F"),
        // pypi names lowercased with '_' as '-'; npm and deb names lowercased.
        ("pkg:pypi/Django_Package@1.11.1", "pkg:pypi/django-package@1.11.1"),
        ("pkg:npm/%40Angular/Animation@12.3.1", "pkg:npm/%40angular/animation@12.3.1"),
        ("pkg:deb/Debian/Curl@7.50.3-1", "pkg:deb/debian/curl@7.50.3-1"),
        // Case of other names is kept.
        ("pkg:cargo/Serde@1.0.0", "pkg:cargo/Serde@1.0.0"),
        // An unencoded '@' in an npm scope is read as the scope when a version follows.
        ("pkg:npm/@angular/animation@12.3.1", "pkg:npm/%40angular/animation@12.3.1"),
        // Subpath: empty, '.' and '..' segments dropped.
        (
            "pkg:golang/google.golang.org/genproto#/googleapis/./../api//annotations/",
            "pkg:golang/google.golang.org/genproto#googleapis/api/annotations",
        ),
        // Percent-encoded characters decoded, and re-encoded where needed.
        (
            "pkg:generic/openssl@1.1.10g?download_url=https://openssl.org/source/openssl-1.1.0g.tar.gz",
            "pkg:generic/openssl@1.1.10g?download_url=https://openssl.org/source/openssl-1.1.0g.tar.gz",
        ),
        ("pkg:golang/github.com/a/b@v2.0.0%2Bincompatible", "pkg:golang/github.com/a/b@v2.0.0%2Bincompatible"),
        ("pkg:deb/debian/libc6@2:2.36-9", "pkg:deb/debian/libc6@2:2.36-9"),
    ];
    for (input, canonical) in cases {
        assert_eq!(parse(input).to_string(), canonical, "{input}");
    }
    assert_eq!(
        parse("pkg:golang/github.com/a/b@v2.0.0%2Bincompatible").version.as_deref(),
        Some("v2.0.0+incompatible")
    );
    assert_eq!(
        parse("pkg:generic/openssl?download_url=https%3A%2F%2Fopenssl.org")
            .qualifiers
            .get("download_url")
            .map(String::as_str),
        Some("https://openssl.org")
    );
    assert_eq!(parse("pkg:golang/github.com/a/b").namespace.as_deref(), Some("github.com/a"));
}

#[test]
fn key_drops_version_qualifiers_and_subpath() {
    let purl = parse("pkg:deb/debian/curl@7.50.3-1?arch=i386&distro=jessie#some/path");
    assert_eq!(purl.key(), "pkg:deb/debian/curl");
    assert_eq!(parse("pkg:npm/%40angular/animation@12.3.1").key(), "pkg:npm/%40angular/animation");
    assert_eq!(parse("pkg:cargo/rand@0.7.2").key(), parse("pkg:cargo/rand@0.8.5").key());
    assert_eq!(parse("pkg:cargo/rand").key(), "pkg:cargo/rand");
    assert_eq!("pkg:pypi/django@1.11.1".parse::<Purl>().map(|p| p.key()), Ok("pkg:pypi/django".to_owned()));
}

#[test]
fn malformed_purls_are_rejected_with_a_reason() {
    let cases = [
        ("npm/x", PurlProblem::Scheme, "purl \"npm/x\": must start with pkg:"),
        ("http:npm/x", PurlProblem::Scheme, "purl \"http:npm/x\": must start with pkg:"),
        ("pkg:", PurlProblem::MissingType, "purl \"pkg:\": the type is missing"),
        ("pkg:/x", PurlProblem::MissingName, "purl \"pkg:/x\": the name is missing"),
        ("pkg:npm", PurlProblem::MissingName, "purl \"pkg:npm\": the name is missing"),
        ("pkg:npm/", PurlProblem::MissingName, "purl \"pkg:npm/\": the name is missing"),
        ("pkg:npm/@1.0", PurlProblem::MissingName, "purl \"pkg:npm/@1.0\": the name is missing"),
        (
            "pkg:n&m/x",
            PurlProblem::InvalidType("n&m".to_owned()),
            "purl \"pkg:n&m/x\": type \"n&m\" must be ASCII letters, digits, '.', '+' or '-' and not start with a digit",
        ),
        (
            "pkg:3d/x",
            PurlProblem::InvalidType("3d".to_owned()),
            "purl \"pkg:3d/x\": type \"3d\" must be ASCII letters, digits, '.', '+' or '-' and not start with a digit",
        ),
        ("pkg:maven/@1.2.3", PurlProblem::MissingName, "purl \"pkg:maven/@1.2.3\": the name is missing"),
        (
            "pkg:maven/commons-io",
            PurlProblem::MissingNamespace("maven".to_owned()),
            "purl \"pkg:maven/commons-io\": maven purls need a namespace",
        ),
        ("pkg:npm/a%2", PurlProblem::Encoding("name"), "purl \"pkg:npm/a%2\": invalid percent-encoding in the name"),
        (
            "pkg:npm/a@1%zz",
            PurlProblem::Encoding("version"),
            "purl \"pkg:npm/a@1%zz\": invalid percent-encoding in the version",
        ),
        (
            "pkg:npm/a@1?x=%ff",
            PurlProblem::Encoding("qualifiers"),
            "purl \"pkg:npm/a@1?x=%ff\": invalid percent-encoding in the qualifiers",
        ),
        (
            "pkg:npm/%gg/a",
            PurlProblem::Encoding("namespace"),
            "purl \"pkg:npm/%gg/a\": invalid percent-encoding in the namespace",
        ),
        (
            "pkg:npm/a#b%",
            PurlProblem::Encoding("subpath"),
            "purl \"pkg:npm/a#b%\": invalid percent-encoding in the subpath",
        ),
        (
            "pkg:npm/a?arch",
            PurlProblem::QualifierWithoutValue("arch".to_owned()),
            "purl \"pkg:npm/a?arch\": qualifier \"arch\" has no '='",
        ),
        (
            "pkg:npm/a?1x=2",
            PurlProblem::InvalidQualifierKey("1x".to_owned()),
            "purl \"pkg:npm/a?1x=2\": qualifier key \"1x\" must be ASCII letters, digits, '.', '-' or '_' and not start with a digit",
        ),
        (
            "pkg:npm/a?a%20b=2",
            PurlProblem::InvalidQualifierKey("a%20b".to_owned()),
            "purl \"pkg:npm/a?a%20b=2\": qualifier key \"a%20b\" must be ASCII letters, digits, '.', '-' or '_' and not start with a digit",
        ),
        (
            "pkg:npm/a?arch=x&ARCH=y",
            PurlProblem::DuplicateQualifier("arch".to_owned()),
            "purl \"pkg:npm/a?arch=x&ARCH=y\": qualifier \"arch\" is repeated",
        ),
    ];
    for (input, problem, message) in cases {
        let err = Purl::parse(input).expect_err(input);
        assert_eq!(err.problem, problem, "{input}");
        assert_eq!(err.input, input);
        assert_eq!(err.to_string(), message);
    }
}

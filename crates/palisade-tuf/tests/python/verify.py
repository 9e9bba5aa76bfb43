"""Checks a repository written by palisade-tuf with python-tuf, the reference implementation.

Usage: verify.py <repo dir>. The directory holds 1.root.json, 2.root.json (a rotation),
root.json (= the newest), targets.json, snapshot.json, timestamp.json, targets/<name> (the
images) and assignment.json (signed by the x-palisade-director key). Exits non-zero on any
failure; exit code 3 means python-tuf is not installed.
"""

import inspect
import json
import os
import sys
import tempfile

try:
    from securesystemslib.formats import encode_canonical
    from securesystemslib.signer import Signature
    from tuf.api.exceptions import DownloadHTTPError
    from tuf.api.metadata import Metadata, Root, Snapshot, Targets, Timestamp
    from tuf.ngclient import FetcherInterface, Updater
except ImportError as e:
    print(f"python-tuf is missing ({e}): pip install tuf (see README)", file=sys.stderr)
    sys.exit(3)


def load(repo, name, cls):
    md = Metadata[cls].from_file(os.path.join(repo, name))
    assert isinstance(md.signed, cls), f"{name}: not {cls.__name__}"
    assert not md.signed.is_expired(), f"{name}: expired"
    return md


def verify(delegator, role, md):
    """`delegator` authorises `md` as `role`. The payload is python-tuf's own canonical encoding
    of what it parsed, so this also proves our encoding and theirs agree."""
    if "payload" in inspect.signature(delegator.verify_delegate).parameters:
        delegator.verify_delegate(role, md.signed_bytes, md.signatures)  # python-tuf >= 6
    else:
        delegator.verify_delegate(role, md)


def main(repo):
    root1 = load(repo, "1.root.json", Root)
    verify(root1.signed, Root.type, root1)
    root2 = load(repo, "2.root.json", Root)
    verify(root1.signed, Root.type, root2)  # the old root authorises the new one
    verify(root2.signed, Root.type, root2)  # and the new one itself
    assert root2.signed.version == root1.signed.version + 1
    root = root2.signed

    targets = load(repo, "targets.json", Targets)
    snapshot = load(repo, "snapshot.json", Snapshot)
    timestamp = load(repo, "timestamp.json", Timestamp)
    verify(root, Targets.type, targets)
    verify(root, Snapshot.type, snapshot)
    verify(root, Timestamp.type, timestamp)

    with open(os.path.join(repo, "snapshot.json"), "rb") as f:
        snapshot_bytes = f.read()
    snap_meta = timestamp.signed.snapshot_meta
    snap_meta.verify_length_and_hashes(snapshot_bytes)
    assert snap_meta.version == snapshot.signed.version, "timestamp names another snapshot version"
    assert snapshot.signed.meta["targets.json"].version == targets.signed.version, "snapshot names other targets"

    keytypes = {root.keys[k].keytype for k in root.roles["targets"].keyids}
    assert keytypes == {"ecdsa", "ed25519"}, f"targets keys are {keytypes}"

    for name, info in targets.signed.targets.items():
        with open(os.path.join(repo, "targets", name), "rb") as f:
            info.verify_length_and_hashes(f.read())
        for field in ("version", "hardware", "counter"):
            assert field in info.custom, f"{name}: custom.{field} missing"

    # The director, authorised by the root keys through an extra field python-tuf keeps.
    director = root.unrecognized_fields["x-palisade-director"]
    # Assignments are not TUF metadata: their signature is checked by hand, as TUF would.
    with open(os.path.join(repo, "assignment.json"), "rb") as f:
        envelope = json.load(f)
    assert envelope["signed"]["_type"] == "x-palisade-assignment"
    payload = encode_canonical(envelope["signed"]).encode()
    good = 0
    for sig in envelope["signatures"]:
        if sig["keyid"] in director["keyids"]:
            root.keys[sig["keyid"]].verify_signature(Signature(sig["keyid"], sig["sig"]), payload)
            good += 1
    assert good >= director["threshold"], "assignment not signed by the director"

    # The whole client workflow, as python-tuf's own updater runs it.
    class DirFetcher(FetcherInterface):
        def _fetch(self, url):
            path = os.path.join(repo, url.removeprefix("file:///"))
            if not os.path.isfile(path):
                raise DownloadHTTPError(f"not found: {url}", 404)
            with open(path, "rb") as f:
                return iter([f.read()])

    with tempfile.TemporaryDirectory() as meta_dir, tempfile.TemporaryDirectory() as target_dir:
        with open(os.path.join(repo, "1.root.json"), "rb") as f:
            bootstrap = f.read()
        kwargs = {}
        if "bootstrap" in inspect.signature(Updater.__init__).parameters:
            kwargs["bootstrap"] = bootstrap
        else:
            with open(os.path.join(meta_dir, "root.json"), "wb") as f:
                f.write(bootstrap)
        updater = Updater(meta_dir, "file:///", target_dir, "file:///targets/", fetcher=DirFetcher(), **kwargs)
        updater.refresh()
        for name in targets.signed.targets:
            info = updater.get_targetinfo(name)
            assert info is not None, f"updater does not find {name}"
            updater.download_target(info)
    print("python-tuf: ok")


if __name__ == "__main__":
    main(sys.argv[1])

"""Writes a small repository signed by python-tuf, for palisade-tuf's client to verify.

Usage: make_repo.py <dir>. Writes 1.root.json, 2.root.json (root key rotated), timestamp.json,
snapshot.json (with length and hashes of targets.json), targets.json (one target with our
`custom` fields; targets signed by an ECDSA P-256 key) and assignment.json. Exit code 3 means
python-tuf is not installed.
"""

import json
import os
import sys
from datetime import datetime, timedelta, timezone

try:
    from securesystemslib.formats import encode_canonical
    from securesystemslib.signer import CryptoSigner
    from tuf.api.metadata import (
        Metadata,
        MetaFile,
        Root,
        Snapshot,
        TargetFile,
        Targets,
        Timestamp,
    )
    from tuf.api.serialization.json import JSONSerializer
except ImportError as e:
    print(f"python-tuf is missing ({e}): pip install tuf (see README)", file=sys.stderr)
    sys.exit(3)


def main(out):
    expires = (datetime.now(timezone.utc) + timedelta(days=7)).replace(microsecond=0)
    root_key = CryptoSigner.generate_ed25519()
    new_root_key = CryptoSigner.generate_ecdsa()
    targets_key = CryptoSigner.generate_ecdsa()
    snapshot_key = CryptoSigner.generate_ed25519()
    timestamp_key = CryptoSigner.generate_ed25519()
    director_key = CryptoSigner.generate_ed25519()
    pretty = JSONSerializer(compact=False)

    root = Root(expires=expires, consistent_snapshot=False)
    for signer, role in [
        (root_key, Root.type),
        (targets_key, Targets.type),
        (snapshot_key, Snapshot.type),
        (timestamp_key, Timestamp.type),
    ]:
        root.add_key(signer.public_key, role)
    director = director_key.public_key
    root.keys[director.keyid] = director
    root.unrecognized_fields["x-palisade-director"] = {"keyids": [director.keyid], "threshold": 1}
    md = Metadata(root)
    md.sign(root_key)
    md.to_file(os.path.join(out, "1.root.json"), pretty)

    root.version = 2
    root.revoke_key(root_key.public_key.keyid, Root.type)
    root.add_key(new_root_key.public_key, Root.type)
    md = Metadata(root)
    md.sign(root_key)
    md.sign(new_root_key, append=True)
    md.to_file(os.path.join(out, "2.root.json"), pretty)

    image = b"firmware from python " * 10
    target = TargetFile.from_data("meter-3.bin", image)
    target.unrecognized_fields["custom"] = {"version": "2.0.0", "hardware": "meter-3", "counter": 9}
    targets = Metadata(Targets(version=2, expires=expires, targets={"meter-3.bin": target}))
    targets.sign(targets_key)
    targets_bytes = targets.to_bytes(pretty)
    with open(os.path.join(out, "targets.json"), "wb") as f:
        f.write(targets_bytes)

    snapshot = Metadata(Snapshot(version=3, expires=expires))
    snapshot.signed.meta["targets.json"] = MetaFile.from_data(2, targets_bytes, ["sha256"])
    snapshot.sign(snapshot_key)
    snapshot_bytes = snapshot.to_bytes(pretty)
    with open(os.path.join(out, "snapshot.json"), "wb") as f:
        f.write(snapshot_bytes)

    timestamp = Metadata(Timestamp(version=4, expires=expires))
    timestamp.signed.snapshot_meta = MetaFile.from_data(3, snapshot_bytes, ["sha256"])
    timestamp.sign(timestamp_key)
    timestamp.to_file(os.path.join(out, "timestamp.json"), pretty)

    with open(os.path.join(out, "image.bin"), "wb") as f:
        f.write(image)
    assignment = {
        "_type": "x-palisade-assignment",
        "device_id": "dev-0001",
        "target": "meter-3.bin",
        "length": len(image),
        "sha256": target.hashes["sha256"],
        "version": "2.0.0",
        "hardware": "meter-3",
        "counter": 9,
        "issued": 3,
        "expires": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    sig = director_key.sign(encode_canonical(assignment).encode())
    with open(os.path.join(out, "assignment.json"), "w") as f:
        json.dump({"signed": assignment, "signatures": [sig.to_dict()]}, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])

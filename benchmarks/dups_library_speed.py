"""End-to-end speed of `imgret dups`' library call on a synthetic library: catalogue read, content
hashes, grouping and the file facts of group members.

``benchmarks/dups_speed.py`` times :func:`imgret.runtime.dups.find_duplicates` alone; this script times
what ``imgret dups`` runs, :func:`imgret.runtime.copies.duplicates`, on a real ``catalogue.sqlite`` of
``--n`` rows holding ``dups_speed.synthetic``'s vectors and hashes (the same seeded clusters, planted
near copies and identical files). Every row that belongs to a planted family or an identical pair has
a real file (a tiny PNG, so its header and size are read as in a real library); the others have
paths that do not exist, which no grouping reads. The encoder is a stand-in with the bundled model's
metric and dimension (no pictures are embedded; ``imgret dups`` embeds nothing either).

Usage::

    python benchmarks/dups_library_speed.py --n 100000
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dups_speed  # noqa: E402  (puts the repo on sys.path)

from imgret.runtime.catalogue import Catalogue  # noqa: E402
from imgret.runtime.copies import duplicates  # noqa: E402
from imgret.runtime.modelinfo import ModelInfo  # noqa: E402
from imgret.runtime.vector_file import VectorFile  # noqa: E402


def build(folder: Path, n: int) -> tuple[Catalogue, int]:
    """A catalogue of ``n`` synthetic rows in ``folder``; returns it and how many real files it names."""
    keys, vectors, hashes, families = dups_speed.synthetic(n)
    real = {i for f in families for i in f} | {i for i, h in enumerate(hashes) if h != f"h{i}"}
    real |= {int(h[1:]) for i, h in enumerate(hashes) if h != f"h{i}"}
    pics = folder / "pictures"
    pics.mkdir()
    tiny = Image.new("RGB", (4, 3), (90, 120, 150))
    cat = Catalogue(str(folder / "catalogue.sqlite"))
    for i in range(n):
        path = pics / f"pic{i:07d}.png"
        if i in real:
            tiny.save(path)
        # the catalogue keeps content hashes as 32 raw bytes: the synthetic labels are hashed to that shape
        cat.put_ok(str(path), 100, 0, hashlib.sha256(hashes[i].encode()).digest(), vectors[i])
    cat.commit()
    return cat, len(real)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="imgret-dups-bench-") as tmp:
        start = time.perf_counter()
        cat, files = build(Path(tmp), args.n)
        built = time.perf_counter() - start
        info = ModelInfo(model_id="stand-in", input_size=64, embedding_dim=dups_speed.DIM)
        encoder = SimpleNamespace(info=info, fingerprint="", metric="cosine", dim=dups_speed.DIM)
        load = os.getloadavg()[0]
        start, cpu0 = time.perf_counter(), dups_speed._cpu()
        found = duplicates(VectorFile(cat, tmp, dups_speed.DIM, "cosine"), encoder, threshold=dups_speed.THRESHOLD)
        seconds, cpu = time.perf_counter() - start, dups_speed._cpu() - cpu0
        cat.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"n": args.n, "real_files": files, "build_seconds": round(built, 1),
                      "seconds": round(seconds, 1), "cpu_seconds": round(cpu, 1), "load_before": load,
                      "peak_rss_mb": round(peak), "groups": len(found.groups),
                      "members": sum(len(g) for g in found.groups)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Deterministic ~0.95 GiB dataset shaped like an application volume:
a Nextcloud data dir (users' files + preview cache) and a MariaDB datadir.

  python3 gen_volume_dataset.py OUT            create the base dataset in OUT (must not exist)
  python3 gen_volume_dataset.py --mib N OUT    the same shape scaled down to about N MiB
                                (file counts and sizes in proportion; a smoke test of a harness)
  python3 gen_volume_dataset.py --mutate OUT   apply the deterministic change set once:
                                1% of files modified + 10 MiB appended to one large file
  python3 gen_volume_dataset.py --small-files OUT   300,000 files of 1 KiB in 300 directories
                                (a mail or upload volume: per-file cost dominates)

Layout / content (all from random.Random(SEED), so byte-identical on every run):
  20,000 small files, size log-uniform 1..64 KiB (mean ~15 KiB, ~296 MiB):
      45% text (Zipf word salad: compresses ~2-3x), 35% random bytes (jpg/png-like),
      20% half text + half random (docx/odt-like)
      14,800 under nextcloud/data/userNN/files/..., 5,000 previews under
      nextcloud/data/appdata_oc7x2k/preview/..., 200 *.frm/*.opt in mysql/
  50 medium files, 1..10 MiB: 30 random media files in user dirs,
      20 InnoDB-like *.ibd (16 KiB pages: random header + text rows + zero fill)
  2 large files, 200 MiB each (mysql/ibdata1, mysql/nextcloud/oc_filecache.ibd):
      1 MiB segments alternating random / one of 4 fixed 16 KiB blocks repeated
  mtimes fixed (2024-01-01 + i seconds).
"""
import os
import random
import sys

SEED = 20240601
KiB, MiB = 1024, 1024 * 1024
N_SMALL, N_MEDIUM = 20_000, 50
LARGE_SIZE = 200 * MiB
BASE_MTIME = 1704067200  # 2024-01-01T00:00:00Z
EXT_TEXT = [".md", ".txt", ".json", ".php", ".csv", ".log", ".xml"]
EXT_BIN = [".jpg", ".png", ".heic", ".gz"]
EXT_MIX = [".docx", ".odt", ".xlsx", ".pdf"]


def make_corpus(rng, size):
    sylls = ["ka", "lo", "mi", "ne", "ru", "ta", "shi", "on", "ver", "da", "el", "qu",
             "ix", "po", "sa", "te", "ul", "bra", "ch", "fi"]
    vocab = ["".join(rng.choices(sylls, k=rng.randint(1, 4))) for _ in range(8000)]
    weights = [1.0 / (r + 1) for r in range(len(vocab))]
    out, n = [], 0
    while n < size:
        line = " ".join(rng.choices(vocab, weights, k=rng.randint(4, 18))) + ".\n"
        out.append(line)
        n += len(line)
    return "".join(out).encode()[:size]


def text_bytes(rng, corpus, size):
    off = rng.randrange(0, len(corpus) - size)
    return corpus[off:off + size]


def small_content(rng, corpus, kind, size):
    if kind == "text":
        return text_bytes(rng, corpus, size)
    if kind == "bin":
        return rng.randbytes(size)
    h = size // 2
    return text_bytes(rng, corpus, h) + rng.randbytes(size - h)


def ibd_content(rng, corpus, size):
    page, parts = 16 * KiB, []
    for _ in range(size // page):
        rows = text_bytes(rng, corpus, rng.randint(4 * KiB, 12 * KiB))
        hdr = rng.randbytes(64)
        parts.append(hdr + rows + b"\0" * (page - len(hdr) - len(rows)))
    return b"".join(parts)


def write_large(rng, path, size):
    blocks = [rng.randbytes(16 * KiB) for _ in range(4)]
    with open(path, "wb") as f:
        for i in range(size // MiB):
            if i % 2 == 0:
                f.write(rng.randbytes(MiB))
            else:
                f.write(blocks[(i // 2) % 4] * (MiB // (16 * KiB)))


def plan(rng, scale=1.0):
    """Return list of (relpath, kind, size); deterministic. scale < 1 keeps the shape with
    fewer small and medium files and smaller large ones (scale 1 is the full dataset)."""
    n_small, n_medium = round(N_SMALL * scale), max(1, round(N_MEDIUM * scale))
    large_size = max(MiB, round(LARGE_SIZE * scale / MiB) * MiB)
    users_end, previews_end = round(n_small * 0.74), round(n_small * 0.99)
    files = []
    folders = ["Documents", "Photos", "Notes", "Talk", "Shared", "Projects/p%d", "Archive/%d"]
    for i in range(n_small):
        size = int(round(KiB * 64 ** rng.random()))  # log-uniform 1..64 KiB
        r = rng.random()
        kind = "text" if r < 0.45 else ("bin" if r < 0.80 else "mix")
        ext = rng.choice({"text": EXT_TEXT, "bin": EXT_BIN, "mix": EXT_MIX}[kind])
        if i < users_end:
            user = "user%02d" % rng.randrange(20)
            d = rng.choice(folders)
            if "%d" in d:
                d = d % rng.randrange(10)
            rel = "nextcloud/data/%s/files/%s/f%05d%s" % (user, d, i, ext)
        elif i < previews_end:
            fid = rng.randrange(1_000_000)
            rel = "nextcloud/data/appdata_oc7x2k/preview/%x/%x/%d/%d-%d.jpg" % (
                fid % 16, (fid // 16) % 16, fid, i, rng.choice([64, 256, 1024]))
            kind = "bin"
        else:
            rel = "mysql/nextcloud/oc_t%03d%s" % (i - previews_end, rng.choice([".frm", ".opt"]))
        files.append((rel, kind, size))
    for j in range(n_medium):
        size = rng.randint(1 * MiB, 10 * MiB)
        if j < n_medium * 0.6:
            rel = "nextcloud/data/user%02d/files/Videos/clip%02d.mp4" % (j % 20, j)
            files.append((rel, "bin", size))
        else:
            files.append(("mysql/nextcloud/oc_m%02d.ibd" % j, "ibd", size // (16 * KiB) * 16 * KiB))
    files.append(("mysql/ibdata1", "large", large_size))
    files.append(("mysql/nextcloud/oc_filecache.ibd", "large", large_size))
    return files


def generate(out, scale=1.0):
    rng = random.Random(SEED)
    corpus = make_corpus(rng, 8 * MiB)
    files = plan(rng, scale)
    os.makedirs(out)
    total = 0
    for i, (rel, kind, size) in enumerate(files):
        p = os.path.join(out, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        if kind == "large":
            write_large(rng, p, size)
        else:
            data = (ibd_content(rng, corpus, size) if kind == "ibd"
                    else small_content(rng, corpus, kind, size))
            with open(p, "wb") as f:
                f.write(data)
        os.utime(p, (BASE_MTIME + i, BASE_MTIME + i))
        total += size
    print("files=%d bytes=%d (%.1f MiB)" % (len(files), total, total / MiB))


def mutate(out):
    marker = out.rstrip("/") + ".mutated"  # sibling, not inside the dataset
    if os.path.exists(marker):
        sys.exit("already mutated")
    rng = random.Random(SEED)
    corpus = make_corpus(rng, 8 * MiB)
    files = plan(rng)
    mrng = random.Random(SEED + 1)
    pool = [f for f in files if f[1] != "large"]
    chosen = mrng.sample(pool, round(0.01 * len(files)))
    t = BASE_MTIME + 86400
    for rel, kind, size in chosen:
        p = os.path.join(out, rel)
        with open(p, "r+b") as f:
            if kind == "text":      # edited document: new text, slightly different size
                new = text_bytes(mrng, corpus, max(512, size + mrng.randint(-256, 256)))
                f.truncate(0)
                f.write(new)
            else:                   # in-place overwrite of a region (db page / re-encode)
                n = min(size, 64 * KiB if size > MiB else 4 * KiB)
                f.seek(mrng.randrange(0, size - n + 1))
                f.write(mrng.randbytes(n))
        os.utime(p, (t, t))
    p = os.path.join(out, "mysql/nextcloud/oc_filecache.ibd")
    with open(p, "ab") as f:
        f.write(mrng.randbytes(10 * MiB))
    os.utime(p, (t, t))
    open(marker, "w").close()
    print("modified %d files, appended 10 MiB to %s" % (len(chosen), p))


def small_files(out, dirs=300, per_dir=1000, size=KiB):
    """Half text, half random, like mail bodies and attachments; fixed mtimes."""
    rng = random.Random(SEED + 2)
    corpus = make_corpus(rng, 1 * MiB)
    os.makedirs(out)
    for d in range(dirs):
        dpath = os.path.join(out, "d%03d" % d)
        os.mkdir(dpath)
        for i in range(per_dir):
            p = os.path.join(dpath, "m%04d.eml" % i)
            data = text_bytes(rng, corpus, size) if i % 2 == 0 else rng.randbytes(size)
            with open(p, "wb") as f:
                f.write(data)
            t = BASE_MTIME + d * per_dir + i
            os.utime(p, (t, t))
    print("files=%d bytes=%d" % (dirs * per_dir, dirs * per_dir * size))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--mutate":
        mutate(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] == "--small-files":
        small_files(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "--mib":
        generate(sys.argv[3], min(1.0, float(sys.argv[2]) / 969.5))
    elif len(sys.argv) == 2:
        generate(sys.argv[1])
    else:
        sys.exit(__doc__)

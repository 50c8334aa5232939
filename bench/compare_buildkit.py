#!/usr/bin/env python3
"""Builds each case directory with `docker build` (BuildKit) and kiln and
prints what differs: the unpacked root file systems (umoci; type, mode,
owner, content, link target, xattrs, link count; not mtimes, since RUN
steps run at different times), the config's `config` fields, the layer
count and history (`created_by`, `empty_layer`).

Called by bench/compare-buildkit, which starts dockerd and loads the base
images into both tools; see bench/README.md."""
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys

KILN = os.environ["KILN"]
DOCKER = os.environ["DOCKER_CLI"]
OUT = os.environ["COMPARE_OUT"]


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def scan(root):
    tree = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            entry = {"mode": oct(stat.S_IMODE(st.st_mode)), "uid": st.st_uid, "gid": st.st_gid}
            if stat.S_ISLNK(st.st_mode):
                entry.update(type="link", target=os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                entry["type"] = "dir"
            elif stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    entry.update(type="file", sha=hashlib.sha256(f.read()).hexdigest()[:12], nlink=st.st_nlink)
            else:
                entry["type"] = "special %o" % stat.S_IFMT(st.st_mode)
            try:
                names = os.listxattr(path, follow_symlinks=False)
                if names:
                    entry["xattrs"] = {n: os.getxattr(path, n, follow_symlinks=False).hex() for n in names}
            except OSError:
                pass
            tree["/" + os.path.relpath(path, root)] = entry
    return tree


def unpack(layout):
    bundle = layout + "-bundle"
    shutil.rmtree(bundle, ignore_errors=True)
    r = run(["umoci", "unpack", "--image", layout + ":latest", bundle])
    if r.returncode:
        raise RuntimeError(f"umoci unpack {layout}: {r.stderr.strip()}")
    return scan(bundle + "/rootfs")


def config(layout):
    r = run(["skopeo", "inspect", "--config", f"oci:{layout}:latest"])
    if r.returncode:
        raise RuntimeError(f"skopeo inspect {layout}: {r.stderr.strip()}")
    c = json.loads(r.stdout)
    history = [(h.get("created_by", ""), bool(h.get("empty_layer"))) for h in c.get("history", [])]
    return c.get("config", {}), history, len(c["rootfs"]["diff_ids"])


def tail(text, n=6):
    return "\n".join("    " + l for l in text.strip().splitlines()[-n:])


def compare(case, args):
    name = os.path.basename(case.rstrip("/"))
    out = os.path.join(OUT, name)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    dockerfile = os.path.join(case, "Dockerfile")
    docker = run([DOCKER, "build", "--no-cache", "-t", f"compare/{name}", "-f", dockerfile, *args, case],
                 env=dict(os.environ, DOCKER_BUILDKIT="1"))
    kiln = run([KILN, "build", "--no-cache", "--progress", "plain", "-t", f"compare/{name}", "-f", dockerfile,
                *args, case])
    if docker.returncode or kiln.returncode:
        verdict = "both fail" if docker.returncode and kiln.returncode else "one fails"
        print(f"{name}: {verdict} (docker {docker.returncode}, kiln {kiln.returncode})")
        if docker.returncode:
            print("  docker:\n" + tail(docker.stderr))
        if kiln.returncode:
            print("  kiln:\n" + tail(kiln.stderr))
        return verdict == "both fail"
    r = run(["skopeo", "copy", "--src-daemon-host", os.environ["DOCKER_HOST"],
             f"docker-daemon:compare/{name}:latest", f"oci:{out}/docker:latest"])
    if r.returncode:
        raise RuntimeError(r.stderr)
    r = run([KILN, "copy", f"store:compare/{name}", f"oci:{out}/kiln:latest"])
    if r.returncode:
        raise RuntimeError(r.stderr)
    lines = []
    a, b = unpack(f"{out}/docker"), unpack(f"{out}/kiln")
    for path in sorted(set(a) | set(b)):
        x, y = a.get(path), b.get(path)
        if x != y:
            if x and y:
                x, y = {k: v for k, v in x.items() if y.get(k) != v}, {k: v for k, v in y.items() if x.get(k) != v}
            lines.append(f"  {path}: docker {x} kiln {y}")
    (ca, ha, na), (cb, hb, nb) = config(f"{out}/docker"), config(f"{out}/kiln")
    for key in sorted(set(ca) | set(cb)):
        if ca.get(key) != cb.get(key):
            lines.append(f"  config.{key}: docker {ca.get(key)!r} kiln {cb.get(key)!r}")
    if na != nb:
        lines.append(f"  layers: docker {na} kiln {nb}")
    for i in range(max(len(ha), len(hb))):
        x = ha[i] if i < len(ha) else None
        y = hb[i] if i < len(hb) else None
        if x != y:
            lines.append(f"  history[{i}]: docker {x} kiln {y}")
    print(f"{name}: {'same' if not lines else f'{len(lines)} differences'}")
    for line in lines:
        print(line)
    return not lines


def main():
    args = []
    cases = []
    it = iter(sys.argv[1:])
    for a in it:
        if a == "--build-arg":
            args += [a, next(it)]
        else:
            cases.append(a)
    same = sum(compare(c, args) for c in cases)
    print(f"\n{same} of {len(cases)} cases the same (or failing in both)")


main()

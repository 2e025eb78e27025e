"""Drives the Python ORAS client (PyPI `oras`, 0.2.x) for tests/tests/oras.rs, the way its
README uses it: `OrasClient(insecure=True, auth_backend="token")`, `login`, then `push` of
a file artifact or `pull` of one. Run with the working directory holding the artifact (oras
only pushes files under it) and HOME pointing there too: its credentials file,
docker-config.json, stays in that folder.

    oras_client.py push HOST REPO:TAG TOKEN FILE
    oras_client.py pull HOST REPO:TAG TOKEN OUTDIR
"""

import os
import sys

import oras.client


def main():
    op, host, reference, token, path = sys.argv[1:6]
    config = os.path.join(os.getcwd(), "docker-config.json")
    client = oras.client.OrasClient(hostname=host, insecure=True, auth_backend="token")
    client.login(username="berth", password=token, hostname=host, config_path=config)
    target = f"{host}/{reference}"
    if op == "push":
        response = client.push(target=target, files=[path], config_path=config)
        print(f"pushed {target}: {response.status_code}")
    elif op == "pull":
        for f in client.pull(target=target, outdir=path, config_path=config):
            print(f)
    else:
        sys.exit(f"unknown operation {op}: use push or pull")


if __name__ == "__main__":
    main()

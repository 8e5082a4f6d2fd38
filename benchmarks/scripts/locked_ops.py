#!/usr/bin/env python3
"""Locked read-modify-write operations (atomic increments, compare-and-swaps, uncontended
lock acquisitions) per call, client and server: callgrind counts how often each
instruction ran, `objdump` says which ones carry a `lock` prefix (or are an `xchg` with
memory). Each costs tens of cycles (it waits for the core's store buffer to drain) while
callgrind counts it as one instruction, so instruction counts alone understate it.

    benchmarks/scripts/locked_ops.py target/release/bench SYSTEM CERT_DIR [IN_FLIGHT]

Runs `bench count-client SYSTEM n IN_FLIGHT 64 CERT_DIR` (IN_FLIGHT 64 unless given) for
n = 1000 and 3000, both
processes under `valgrind --tool=callgrind --dump-instr=yes`, and prints the difference
per call. Only the `bench` executable's own instructions are counted (those of the C
library are not).
"""
import os
import re
import subprocess
import sys
import tempfile


def locked_addresses(binary):
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", binary],
                         capture_output=True, text=True, check=True).stdout
    found = set()
    for line in out.splitlines():
        m = re.match(r"\s*([0-9a-f]+):\s+(\S+)(.*)", line)
        if m and (m.group(2).startswith("lock") or
                  (m.group(2).startswith("xchg") and "(" in m.group(3))):
            found.add(int(m.group(1), 16))
    return found


def executions(profile, binary):
    """How often each instruction of `binary` ran, by address."""
    counts, names, in_binary, last = {}, {}, False, 0
    skip = False
    for line in open(profile):
        if line.startswith(("ob=", "cob=")):
            m = re.match(r"c?ob=\((\d+)\)(?: (.*))?", line.strip())
            if m.group(2):
                names[m.group(1)] = m.group(2)
            if line.startswith("ob="):
                in_binary = os.path.realpath(names[m.group(1)]) == binary
            continue
        if line.startswith("calls="):
            skip = True  # the next line is the call's inclusive cost, not executions
            continue
        if not line[:1] or not (line[0].isdigit() or line[0] in "+-*"):
            continue
        parts = line.split()
        position = parts[0]
        if position == "*":
            address = last
        elif position[0] in "+-":
            step = int(position[1:], 0)
            address = last + step if position[0] == "+" else last - step
        else:
            address = int(position, 0)
        last = address
        if skip:
            skip = False
            continue
        if in_binary and len(parts) > 2:
            counts[address] = counts.get(address, 0) + int(parts[2])
    return counts


def main():
    binary = os.path.realpath(sys.argv[1])
    system = sys.argv[2]
    certs = sys.argv[3]
    in_flight = sys.argv[4] if len(sys.argv) > 4 else "64"
    locked = locked_addresses(binary)
    work = tempfile.mkdtemp()
    runs = {}
    for calls in (1000, 3000):
        client, server = (os.path.join(work, f"{side}-{calls}") for side in ("client", "server"))
        tool = ["valgrind", "--tool=callgrind", "--quiet", "--dump-instr=yes"]
        env = dict(os.environ,
                   BENCH_SERVER_WRAPPER=" ".join(tool + [f"--callgrind-out-file={server}"]))
        subprocess.run(tool + [f"--callgrind-out-file={client}", binary, "count-client",
                               system, str(calls), in_flight, "64", certs, "--no-pin"],
                       env=env, check=True, stdout=subprocess.DEVNULL)
        runs[calls] = (executions(client, binary), executions(server, binary))
    for index, side in enumerate(("client", "server")):
        small, large = runs[1000][index], runs[3000][index]
        ran = sum(large.values()) - sum(small.values())
        ops = sum(large.get(a, 0) - small.get(a, 0) for a in locked)
        print(f"{system} {side}: {ops / 2000:.2f} locked operations, "
              f"{ran / 2000:.0f} instructions of the executable, per call")


if __name__ == "__main__":
    main()
